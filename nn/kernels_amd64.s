//go:build amd64 && !purego

#include "textflag.h"

// AVX-512 versions of the hot loops of kernels.go (see kernels_amd64.go).
// Element-wise results are bit-identical to the Go loops (separate
// multiply and add, the same ReLU bit trick); sums use 32 float32 lanes.

DATA evenIdx<>+0(SB)/4, $0
DATA evenIdx<>+4(SB)/4, $2
DATA evenIdx<>+8(SB)/4, $4
DATA evenIdx<>+12(SB)/4, $6
DATA evenIdx<>+16(SB)/4, $8
DATA evenIdx<>+20(SB)/4, $10
DATA evenIdx<>+24(SB)/4, $12
DATA evenIdx<>+28(SB)/4, $14
DATA evenIdx<>+32(SB)/4, $16
DATA evenIdx<>+36(SB)/4, $18
DATA evenIdx<>+40(SB)/4, $20
DATA evenIdx<>+44(SB)/4, $22
DATA evenIdx<>+48(SB)/4, $24
DATA evenIdx<>+52(SB)/4, $26
DATA evenIdx<>+56(SB)/4, $28
DATA evenIdx<>+60(SB)/4, $30
GLOBL evenIdx<>(SB), RODATA|NOPTR, $64

DATA dupLoIdx<>+0(SB)/4, $0
DATA dupLoIdx<>+4(SB)/4, $0
DATA dupLoIdx<>+8(SB)/4, $1
DATA dupLoIdx<>+12(SB)/4, $1
DATA dupLoIdx<>+16(SB)/4, $2
DATA dupLoIdx<>+20(SB)/4, $2
DATA dupLoIdx<>+24(SB)/4, $3
DATA dupLoIdx<>+28(SB)/4, $3
DATA dupLoIdx<>+32(SB)/4, $4
DATA dupLoIdx<>+36(SB)/4, $4
DATA dupLoIdx<>+40(SB)/4, $5
DATA dupLoIdx<>+44(SB)/4, $5
DATA dupLoIdx<>+48(SB)/4, $6
DATA dupLoIdx<>+52(SB)/4, $6
DATA dupLoIdx<>+56(SB)/4, $7
DATA dupLoIdx<>+60(SB)/4, $7
GLOBL dupLoIdx<>(SB), RODATA|NOPTR, $64

DATA dupHiIdx<>+0(SB)/4, $8
DATA dupHiIdx<>+4(SB)/4, $8
DATA dupHiIdx<>+8(SB)/4, $9
DATA dupHiIdx<>+12(SB)/4, $9
DATA dupHiIdx<>+16(SB)/4, $10
DATA dupHiIdx<>+20(SB)/4, $10
DATA dupHiIdx<>+24(SB)/4, $11
DATA dupHiIdx<>+28(SB)/4, $11
DATA dupHiIdx<>+32(SB)/4, $12
DATA dupHiIdx<>+36(SB)/4, $12
DATA dupHiIdx<>+40(SB)/4, $13
DATA dupHiIdx<>+44(SB)/4, $13
DATA dupHiIdx<>+48(SB)/4, $14
DATA dupHiIdx<>+52(SB)/4, $14
DATA dupHiIdx<>+56(SB)/4, $15
DATA dupHiIdx<>+60(SB)/4, $15
GLOBL dupHiIdx<>(SB), RODATA|NOPTR, $64

// TAILMASK sets mask register k to the low (n & 15) bits and reg to n >> 4.
#define TAILMASK(n, reg, k) \
	MOVQ n, CX \
	ANDQ $15, CX \
	MOVQ $1, AX \
	SHLQ CX, AX \
	DECQ AX \
	KMOVW AX, k \
	MOVQ n, reg \
	SHRQ $4, reg

// func gatherS2AVX(dst, src *float32, rows, dstStride, srcStride, full, mlo, mhi, mst int)
TEXT ·gatherS2AVX(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ dstStride+24(FP), R8
	MOVQ srcStride+32(FP), R9
	MOVQ full+40(FP), R10
	MOVQ mlo+48(FP), AX
	KMOVW AX, K1
	MOVQ mhi+56(FP), AX
	KMOVW AX, K2
	MOVQ mst+64(FP), AX
	KMOVW AX, K3
	VMOVUPS evenIdx<>(SB), Z31
	SHLQ $2, R8
	SHLQ $2, R9
	TESTQ CX, CX
	JLE gdone
grow:
	MOVQ DI, R11
	MOVQ SI, R12
	MOVQ R10, DX
	TESTQ DX, DX
	JLE gtail
gchunk:
	VMOVUPS (R12), Z0
	VPERMT2PS 64(R12), Z31, Z0
	VMOVUPS Z0, (R11)
	ADDQ $128, R12
	ADDQ $64, R11
	DECQ DX
	JNZ gchunk
gtail:
	VMOVUPS.Z (R12), K1, Z0
	VMOVUPS.Z 64(R12), K2, Z1
	VPERMT2PS Z1, Z31, Z0
	VMOVUPS Z0, K3, (R11)
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ grow
gdone:
	VZEROUPPER
	RET

// func scatterAddS2AVX(dst, src *float32, rows, dstStride, srcStride, full, mlo, mhi, mst int)
TEXT ·scatterAddS2AVX(SB), NOSPLIT, $0-72
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ dstStride+24(FP), R8
	MOVQ srcStride+32(FP), R9
	MOVQ full+40(FP), R10
	MOVQ mlo+48(FP), AX
	KMOVW AX, K1
	MOVQ mhi+56(FP), AX
	KMOVW AX, K2
	MOVQ mst+64(FP), AX
	KMOVW AX, K3
	MOVQ $0x5555, AX
	KMOVW AX, K4
	KANDW K4, K1, K1
	KANDW K4, K2, K2
	VMOVUPS dupLoIdx<>(SB), Z30
	VMOVUPS dupHiIdx<>(SB), Z31
	SHLQ $2, R8
	SHLQ $2, R9
	TESTQ CX, CX
	JLE sdone
srow:
	MOVQ DI, R11
	MOVQ SI, R12
	MOVQ R10, DX
	TESTQ DX, DX
	JLE stail
schunk:
	VMOVUPS (R12), Z0
	VPERMPS.Z Z0, Z30, K4, Z1
	VPERMPS.Z Z0, Z31, K4, Z2
	VADDPS (R11), Z1, Z1
	VADDPS 64(R11), Z2, Z2
	VMOVUPS Z1, (R11)
	VMOVUPS Z2, 64(R11)
	ADDQ $64, R12
	ADDQ $128, R11
	DECQ DX
	JNZ schunk
stail:
	VMOVUPS.Z (R12), K3, Z0
	VPERMPS.Z Z0, Z30, K1, Z1
	VPERMPS.Z Z0, Z31, K2, Z2
	VMOVUPS.Z (R11), K1, Z3
	VMOVUPS.Z 64(R11), K2, Z4
	VADDPS Z3, Z1, Z1
	VADDPS Z4, Z2, Z2
	VMOVUPS Z1, K1, (R11)
	VMOVUPS Z2, K2, 64(R11)
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ srow
sdone:
	VZEROUPPER
	RET

// func copyRowsAVX(dst, src *float32, rows, dstStride, srcStride, full, mst int)
TEXT ·copyRowsAVX(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ dstStride+24(FP), R8
	MOVQ srcStride+32(FP), R9
	MOVQ full+40(FP), R10
	MOVQ mst+48(FP), AX
	KMOVW AX, K3
	SHLQ $2, R8
	SHLQ $2, R9
	TESTQ CX, CX
	JLE cdone
crow:
	MOVQ DI, R11
	MOVQ SI, R12
	MOVQ R10, DX
	TESTQ DX, DX
	JLE ctail
cchunk:
	VMOVUPS (R12), Z0
	VMOVUPS Z0, (R11)
	ADDQ $64, R12
	ADDQ $64, R11
	DECQ DX
	JNZ cchunk
ctail:
	VMOVUPS.Z (R12), K3, Z0
	VMOVUPS Z0, K3, (R11)
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ crow
cdone:
	VZEROUPPER
	RET

// func addRowsAVX(dst, src *float32, rows, dstStride, srcStride, full, mst int)
TEXT ·addRowsAVX(SB), NOSPLIT, $0-56
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ rows+16(FP), CX
	MOVQ dstStride+24(FP), R8
	MOVQ srcStride+32(FP), R9
	MOVQ full+40(FP), R10
	MOVQ mst+48(FP), AX
	KMOVW AX, K3
	SHLQ $2, R8
	SHLQ $2, R9
	TESTQ CX, CX
	JLE adone
arow:
	MOVQ DI, R11
	MOVQ SI, R12
	MOVQ R10, DX
	TESTQ DX, DX
	JLE atail
achunk:
	VMOVUPS (R12), Z0
	VADDPS (R11), Z0, Z0
	VMOVUPS Z0, (R11)
	ADDQ $64, R12
	ADDQ $64, R11
	DECQ DX
	JNZ achunk
atail:
	VMOVUPS.Z (R12), K3, Z0
	VMOVUPS.Z (R11), K3, Z1
	VADDPS Z0, Z1, Z0
	VMOVUPS Z0, K3, (R11)
	ADDQ R8, DI
	ADDQ R9, SI
	DECQ CX
	JNZ arow
adone:
	VZEROUPPER
	RET

// RELU clears the lanes of z whose sign bit is set (relu32), using t.
#define RELU(z, t) \
	VPSRAD $31, z, t \
	VPANDND z, t, z

// func affineAVX(y, x *float32, n int, a, b float32, relu, nt bool)
// With nt the whole vectors go out with non-temporal stores (y 64-byte
// aligned): a large output written once and read much later skips the
// read-for-ownership of every line.
TEXT ·affineAVX(SB), NOSPLIT, $0-34
	MOVQ y+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), BX
	VBROADCASTSS a+24(FP), Z30
	VBROADCASTSS b+28(FP), Z31
	MOVBLZX relu+32(FP), R8
	MOVBLZX nt+33(FP), R9
	TAILMASK(BX, DX, K3)
	TESTQ DX, DX
	JLE ftail
floop:
	VMULPS (SI), Z30, Z0
	VADDPS Z31, Z0, Z0
	TESTQ R8, R8
	JZ fst
	RELU(Z0, Z1)
fst:
	TESTQ R9, R9
	JNZ fnt
	VMOVUPS Z0, (DI)
	JMP fnext
fnt:
	VMOVNTPS Z0, (DI)
fnext:
	ADDQ $64, SI
	ADDQ $64, DI
	DECQ DX
	JNZ floop
ftail:
	VMOVUPS.Z (SI), K3, Z0
	VMULPS Z0, Z30, Z0
	VADDPS Z31, Z0, Z0
	TESTQ R8, R8
	JZ ftst
	RELU(Z0, Z1)
ftst:
	VMOVUPS Z0, K3, (DI)
	TESTQ R9, R9
	JZ fdone
	SFENCE
fdone:
	VZEROUPPER
	RET

// func shiftedSumsAVX(x *float32, n int, s float32, out *float32)
// out[0:32] = lane sums of x−s, out[32:64] = lane sums of (x−s)².
TEXT ·shiftedSumsAVX(SB), NOSPLIT, $0-32
	MOVQ x+0(FP), SI
	MOVQ n+8(FP), BX
	VBROADCASTSS s+16(FP), Z31
	MOVQ out+24(FP), DI
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	TAILMASK(BX, DX, K3)
	SHRQ $1, DX
	JCS odd
	JMP pairs
odd:
	VMOVUPS (SI), Z4
	VSUBPS Z31, Z4, Z4
	VADDPS Z4, Z0, Z0
	VFMADD231PS Z4, Z4, Z2
	ADDQ $64, SI
pairs:
	TESTQ DX, DX
	JLE stl
sloop:
	VMOVUPS (SI), Z4
	VMOVUPS 64(SI), Z5
	VSUBPS Z31, Z4, Z4
	VSUBPS Z31, Z5, Z5
	VADDPS Z4, Z0, Z0
	VADDPS Z5, Z1, Z1
	VFMADD231PS Z4, Z4, Z2
	VFMADD231PS Z5, Z5, Z3
	ADDQ $128, SI
	DECQ DX
	JNZ sloop
stl:
	VMOVUPS.Z (SI), K3, Z4
	VSUBPS.Z Z31, Z4, K3, Z4
	VADDPS Z4, Z1, Z1
	VFMADD231PS Z4, Z4, Z3
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VZEROUPPER
	RET

// PASSPOS sets d to 0 in the lanes where y (a ReLU output) is +0, keeping
// it where y > 0 (passIfPositive), using t and the all-ones-as-1 vector one.
#define PASSPOS(y, d, t, one) \
	VPSUBD one, y, t \
	VPSRAD $31, t, t \
	VPANDND d, t, d

// YFROMX sets y to the forward output relu32(x·ra + rb) (ra in Z28, rb in
// Z29), bit for bit as affineAVX computed it, using t.
#define YFROMX(x, y, t) \
	VMULPS x, Z28, y \
	VADDPS Z29, y, y \
	RELU(y, t)

// func bnGradSumsAVX(dy, x *float32, n int, mu, ra, rb float32, relu bool, out *float32)
// out[0:32] = lane sums of d, out[32:64] = lane sums of d·(x−mu), d being
// dy passed where relu(ra·x + rb) > 0 when relu is set.
TEXT ·bnGradSumsAVX(SB), NOSPLIT, $0-48
	MOVQ dy+0(FP), SI
	MOVQ x+8(FP), R9
	MOVQ n+16(FP), BX
	VBROADCASTSS mu+24(FP), Z31
	VBROADCASTSS ra+28(FP), Z28
	VBROADCASTSS rb+32(FP), Z29
	MOVBLZX relu+36(FP), R8
	MOVQ out+40(FP), DI
	MOVL $1, AX
	VPBROADCASTD AX, Z30
	VMOVUPS (DI), Z0
	VMOVUPS 64(DI), Z1
	VMOVUPS 128(DI), Z2
	VMOVUPS 192(DI), Z3
	TAILMASK(BX, DX, K3)
	TESTQ DX, DX
	JLE btail
bloop:
	VMOVUPS (SI), Z4
	VMOVUPS (R9), Z5
	TESTQ R8, R8
	JZ bnr
	YFROMX(Z5, Z6, Z8)
	PASSPOS(Z6, Z4, Z7, Z30)
bnr:
	VSUBPS Z31, Z5, Z5
	VADDPS Z4, Z0, Z0
	VFMADD231PS Z5, Z4, Z2
	ADDQ $64, SI
	ADDQ $64, R9
	DECQ DX
	JNZ bloop
btail:
	VMOVUPS.Z (SI), K3, Z4
	VMOVUPS.Z (R9), K3, Z5
	TESTQ R8, R8
	JZ btnr
	YFROMX(Z5, Z6, Z8)
	PASSPOS(Z6, Z4, Z7, Z30)
btnr:
	VSUBPS Z31, Z5, Z5
	VADDPS Z4, Z1, Z1
	VFMADD231PS Z5, Z4, Z3
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	VMOVUPS Z2, 128(DI)
	VMOVUPS Z3, 192(DI)
	VZEROUPPER
	RET

// func bnGradInputAVX(dx, dy, x *float32, n int, mu, A, B, C, ra, rb float32, relu, fresh bool)
// dx (= or +=) A·d + B·(x−mu) + C, with d as in bnGradSumsAVX.
TEXT ·bnGradInputAVX(SB), NOSPLIT, $0-58
	MOVQ dx+0(FP), DI
	MOVQ dy+8(FP), SI
	MOVQ x+16(FP), R9
	MOVQ n+24(FP), BX
	VBROADCASTSS mu+32(FP), Z31
	VBROADCASTSS A+36(FP), Z24
	VBROADCASTSS B+40(FP), Z25
	VBROADCASTSS C+44(FP), Z27
	VBROADCASTSS ra+48(FP), Z28
	VBROADCASTSS rb+52(FP), Z29
	MOVBLZX relu+56(FP), R8
	MOVBLZX fresh+57(FP), R11
	MOVL $1, AX
	VPBROADCASTD AX, Z30
	TAILMASK(BX, DX, K3)
	KXNORW K4, K4, K4
	INCQ DX
iloop:
	DECQ DX
	JNZ ifull
	KMOVW K3, K4
ifull:
	VMOVUPS.Z (SI), K4, Z4
	VMOVUPS.Z (R9), K4, Z5
	TESTQ R8, R8
	JZ inr
	YFROMX(Z5, Z6, Z8)
	PASSPOS(Z6, Z4, Z7, Z30)
inr:
	VMULPS Z4, Z24, Z4
	VSUBPS Z31, Z5, Z5
	VMULPS Z5, Z25, Z5
	VADDPS Z5, Z4, Z4
	VADDPS Z27, Z4, Z4
	TESTQ R11, R11
	JNZ ist
	VMOVUPS.Z (DI), K4, Z5
	VADDPS Z4, Z5, Z4
ist:
	VMOVUPS Z4, K4, (DI)
	ADDQ $64, SI
	ADDQ $64, R9
	ADDQ $64, DI
	TESTQ DX, DX
	JNZ iloop
	VZEROUPPER
	RET

// func gatherIdxAVX(dst, src *float32, idx *int32, n int)
// dst[q] = src[idx[q]], or 0 where idx[q] < 0.
TEXT ·gatherIdxAVX(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), R8
	MOVQ n+24(FP), BX
	MOVQ BX, CX
	ANDQ $15, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K3
	SHRQ $4, BX
	TESTQ BX, BX
	JLE xtail
xloop:
	VMOVDQU32 (R8), Z1
	VPMOVD2M Z1, K1
	KNOTW K1, K1
	VPXORD Z0, Z0, Z0
	VGATHERDPS (SI)(Z1*4), K1, Z0
	VMOVUPS Z0, (DI)
	ADDQ $64, R8
	ADDQ $64, DI
	DECQ BX
	JNZ xloop
xtail:
	VMOVDQU32.Z (R8), K3, Z1
	VPMOVD2M Z1, K1
	KNOTW K1, K1
	KANDW K3, K1, K1
	VPXORD Z0, Z0, Z0
	VGATHERDPS (SI)(Z1*4), K1, Z0
	VMOVUPS Z0, K3, (DI)
	VZEROUPPER
	RET

// func adamwAVX(w, grad, m, v *float32, n int, decay, b1, omb1, b2, omb2, sqrtBC2, eps, stepSize float32)
// One AdamW update, in the order of operations of AdamW.Step's Go loop.
TEXT ·adamwAVX(SB), NOSPLIT, $0-72
	MOVQ w+0(FP), DI
	MOVQ grad+8(FP), SI
	MOVQ m+16(FP), R8
	MOVQ v+24(FP), R9
	MOVQ n+32(FP), BX
	VBROADCASTSS decay+40(FP), Z24
	VBROADCASTSS b1+44(FP), Z25
	VBROADCASTSS omb1+48(FP), Z26
	VBROADCASTSS b2+52(FP), Z27
	VBROADCASTSS omb2+56(FP), Z28
	VBROADCASTSS sqrtBC2+60(FP), Z29
	VBROADCASTSS eps+64(FP), Z30
	VBROADCASTSS stepSize+68(FP), Z31
	TAILMASK(BX, DX, K3)
	KXNORW K4, K4, K4
	INCQ DX
aloop:
	DECQ DX
	JNZ afull
	KMOVW K3, K4
afull:
	VMOVUPS.Z (DI), K4, Z0
	VMOVUPS.Z (SI), K4, Z1
	VMOVUPS.Z (R8), K4, Z2
	VMOVUPS.Z (R9), K4, Z3
	VMULPS Z24, Z0, Z0
	VMULPS Z25, Z2, Z2
	VMULPS Z26, Z1, Z4
	VADDPS Z4, Z2, Z2
	VMULPS Z27, Z3, Z3
	VMULPS Z28, Z1, Z5
	VMULPS Z1, Z5, Z5
	VADDPS Z5, Z3, Z3
	VSQRTPS Z3, Z6
	VDIVPS Z29, Z6, Z6
	VADDPS Z30, Z6, Z6
	VMULPS Z2, Z31, Z7
	VDIVPS Z6, Z7, Z7
	VSUBPS Z7, Z0, Z0
	VMOVUPS Z0, K4, (DI)
	VMOVUPS Z2, K4, (R8)
	VMOVUPS Z3, K4, (R9)
	ADDQ $64, DI
	ADDQ $64, SI
	ADDQ $64, R8
	ADDQ $64, R9
	TESTQ DX, DX
	JNZ aloop
	VZEROUPPER
	RET

// SCATTERCHUNK adds the 16 (or mask k) values at SI into dst (DI) at the
// indices at R8, skipping negative indices.
#define SCATTERCHUNK(k) \
	VMOVDQU32.Z (R8), k, Z1 \
	VMOVUPS.Z (SI), k, Z2 \
	VPMOVD2M Z1, K1 \
	KANDNW k, K1, K1 \
	KMOVW K1, K2 \
	VPXORD Z0, Z0, Z0 \
	VGATHERDPS (DI)(Z1*4), K1, Z0 \
	VADDPS Z2, Z0, Z0 \
	VSCATTERDPS Z0, K2, (DI)(Z1*4)

// func scatterAddIdxAVX(dst, src *float32, idx *int32, rows, rowLen int)
// dst[idx[q]] += src[q] where idx[q] >= 0, row by row (the indices within
// one row must be distinct; different rows may share them).
TEXT ·scatterAddIdxAVX(SB), NOSPLIT, $0-40
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ idx+16(FP), R8
	MOVQ rows+24(FP), R9
	MOVQ rowLen+32(FP), BX
	TAILMASK(BX, R10, K3)
	MOVQ BX, R11
	ANDQ $15, R11
	SHLQ $2, R11
	KXNORW K4, K4, K4
	TESTQ R9, R9
	JLE sidone
sirow:
	MOVQ R10, DX
	TESTQ DX, DX
	JLE sitail
sichunk:
	SCATTERCHUNK(K4)
	ADDQ $64, R8
	ADDQ $64, SI
	DECQ DX
	JNZ sichunk
sitail:
	TESTQ R11, R11
	JZ sinext
	SCATTERCHUNK(K3)
	ADDQ R11, R8
	ADDQ R11, SI
sinext:
	DECQ R9
	JNZ sirow
sidone:
	VZEROUPPER
	RET

DATA oddIdx<>+0(SB)/4, $1
DATA oddIdx<>+4(SB)/4, $3
DATA oddIdx<>+8(SB)/4, $5
DATA oddIdx<>+12(SB)/4, $7
DATA oddIdx<>+16(SB)/4, $9
DATA oddIdx<>+20(SB)/4, $11
DATA oddIdx<>+24(SB)/4, $13
DATA oddIdx<>+28(SB)/4, $15
DATA oddIdx<>+32(SB)/4, $17
DATA oddIdx<>+36(SB)/4, $19
DATA oddIdx<>+40(SB)/4, $21
DATA oddIdx<>+44(SB)/4, $23
DATA oddIdx<>+48(SB)/4, $25
DATA oddIdx<>+52(SB)/4, $27
DATA oddIdx<>+56(SB)/4, $29
DATA oddIdx<>+60(SB)/4, $31
GLOBL oddIdx<>(SB), RODATA|NOPTR, $64

DATA twoIdx<>+0(SB)/4, $0
DATA twoIdx<>+4(SB)/4, $2
DATA twoIdx<>+8(SB)/4, $4
DATA twoIdx<>+12(SB)/4, $6
DATA twoIdx<>+16(SB)/4, $8
DATA twoIdx<>+20(SB)/4, $10
DATA twoIdx<>+24(SB)/4, $12
DATA twoIdx<>+28(SB)/4, $14
DATA twoIdx<>+32(SB)/4, $16
DATA twoIdx<>+36(SB)/4, $18
DATA twoIdx<>+40(SB)/4, $20
DATA twoIdx<>+44(SB)/4, $22
DATA twoIdx<>+48(SB)/4, $24
DATA twoIdx<>+52(SB)/4, $26
DATA twoIdx<>+56(SB)/4, $28
DATA twoIdx<>+60(SB)/4, $30
GLOBL twoIdx<>(SB), RODATA|NOPTR, $64

// MAXUPD folds candidate values c with indices ci into the running first
// maximum (values Z0, indices Z1): taken where c > max, or where c is NaN
// and the maximum is not (so the first NaN wins, as in a scan).
#define MAXUPD(c, ci) \
	VCMPPS $0x1e, Z0, c, K1 \
	VCMPPS $3, c, c, K2 \
	VCMPPS $7, Z0, Z0, K4 \
	KANDW K4, K2, K2 \
	KORW K2, K1, K1 \
	VMOVAPS c, K1, Z0 \
	VMOVDQA32 ci, K1, Z1

// func maxRowS2AVX(hm *float32, hi *int32, row *float32, ow int)
// The 3-wide, stride-2 window maxima of one row of 2·ow values padded by
// one −Inf column on the left: for oj < ow, hm[oj] = the first maximum of
// row[2oj−1], row[2oj], row[2oj+1] (the padding never chosen), hi[oj] its
// column.
TEXT ·maxRowS2AVX(SB), NOSPLIT, $0-32
	MOVQ hm+0(FP), DI
	MOVQ hi+8(FP), R8
	MOVQ row+16(FP), SI
	MOVQ ow+24(FP), BX
	MOVL $0xff800000, AX
	VPBROADCASTD AX, Z31          // −Inf
	VMOVUPS evenIdx<>(SB), Z30
	VMOVUPS oddIdx<>(SB), Z29
	VMOVUPS twoIdx<>(SB), Z28     // 0, 2, 4, …: column 2oj for o0 = 0
	MOVL $2, AX
	VPBROADCASTD AX, Z26
	MOVL $1, AX
	VPBROADCASTD AX, Z25
	MOVL $32, AX
	VPBROADCASTD AX, Z24
	VPXORD Z23, Z23, Z23          // zero
	VMOVAPS Z31, Z27              // O of the previous chunk: padding
	XORQ R9, R9                   // o0
mrchunk:
	MOVQ BX, CX
	SUBQ R9, CX                   // outputs left
	JLE mrdone
	CMPQ CX, $16
	JLE mrtail
	MOVQ $16, CX
mrtail:
	// load masks: 2n values over two vectors; store mask n
	MOVQ CX, DX
	SHLQ $1, DX
	MOVQ DX, R10
	CMPQ R10, $16
	JLE mr1
	MOVQ $16, R10
mr1:
	MOVQ CX, R11
	MOVQ R10, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K5
	SUBQ $16, DX
	JGE mr2
	XORQ DX, DX
mr2:
	MOVQ DX, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K6
	MOVQ R11, CX
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K7
	VMOVAPS Z31, Z2
	VMOVAPS Z31, Z3
	VMOVUPS (SI), K5, Z2
	VMOVUPS 64(SI), K6, Z3
	VMOVAPS Z2, Z4
	VPERMT2PS Z3, Z30, Z4         // E = row[2oj]
	VMOVAPS Z2, Z5
	VPERMT2PS Z3, Z29, Z5         // O = row[2oj+1]
	VALIGND $15, Z27, Z5, Z6      // O shifted: row[2oj−1]
	VMOVAPS Z5, Z27
	// indices: E at Z28, O at Z28+1, Om1 at max(Z28−1, 0)
	VPSUBD Z25, Z28, Z7
	VPMAXSD Z23, Z7, Z7
	VPADDD Z25, Z28, Z8
	VMOVAPS Z6, Z0
	VMOVDQA32 Z7, Z1
	MAXUPD(Z4, Z28)
	MAXUPD(Z5, Z8)
	VMOVUPS Z0, K7, (DI)
	VMOVDQU32 Z1, K7, (R8)
	VPADDD Z24, Z28, Z28
	ADDQ $128, SI
	ADDQ $64, DI
	ADDQ $64, R8
	ADDQ $16, R9
	JMP mrchunk
mrdone:
	VZEROUPPER
	RET

// func maxColsAVX(y *float32, arg *int32, hm *float32, hi *int32, ow, w, r0, nrows int)
// For oj < ow, the first maximum over rows r0 … r0+nrows−1 of hm (rows ow
// apart): y[oj] = it, arg[oj] = r·w + hi[r·ow + oj] for its row r.
TEXT ·maxColsAVX(SB), NOSPLIT, $0-64
	MOVQ y+0(FP), DI
	MOVQ arg+8(FP), R8
	MOVQ hm+16(FP), SI
	MOVQ hi+24(FP), R9
	MOVQ ow+32(FP), BX
	MOVQ w+40(FP), R10
	MOVQ r0+48(FP), R11
	MOVQ nrows+56(FP), R12
	// SI, R9 at row r0
	MOVQ R11, AX
	IMULQ BX, AX
	SHLQ $2, AX
	ADDQ AX, SI
	ADDQ AX, R9
	MOVQ BX, R13
	SHLQ $2, R13                  // row stride in bytes
	XORQ R14, R14                 // o0 (R14 is free in ABI0 assembly)
mcchunk:
	MOVQ BX, CX
	SUBQ R14, CX
	JLE mcdone
	CMPQ CX, $16
	JLE mctail
	MOVQ $16, CX
mctail:
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K7
	LEAQ (SI)(R14*4), DX          // hm row r0 at o0
	LEAQ (R9)(R14*4), AX          // hi row r0 at o0
	MOVQ R11, CX
	IMULQ R10, CX                 // r·w
	VMOVUPS.Z (DX), K7, Z0
	VMOVDQU32.Z (AX), K7, Z1
	VPBROADCASTD CX, Z2
	VPADDD Z2, Z1, Z1
	MOVQ R12, R15
	DECQ R15
	JLE mcstore
mcrow:
	ADDQ R13, DX
	ADDQ R13, AX
	ADDQ R10, CX
	VMOVUPS.Z (DX), K7, Z3
	VMOVDQU32.Z (AX), K7, Z4
	VPBROADCASTD CX, Z2
	VPADDD Z2, Z4, Z4
	MAXUPD(Z3, Z4)
	DECQ R15
	JNZ mcrow
mcstore:
	VMOVUPS Z0, K7, (DI)(R14*4)
	VMOVDQU32 Z1, K7, (R8)(R14*4)
	ADDQ $16, R14
	JMP mcchunk
mcdone:
	VZEROUPPER
	RET


// func gatherColsAVX(dst, x *float32, base, cls *int32, mask *uint32, offs *int32, n int, sc, sh *float32, mode int)
// For each of n pixels q: dst[32q+l] = x[base[q]+offs[l]] for the lanes l
// set in mask[cls[q]], 0 for the others; with mode 1 each gathered lane l
// is then mapped to x·sc[l] + sh[l], with mode 2 also ReLU (affineAVX's
// values; lanes outside the mask stay 0).
TEXT ·gatherColsAVX(SB), NOSPLIT, $0-80
	MOVQ dst+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ base+16(FP), R8
	MOVQ cls+24(FP), R9
	MOVQ mask+32(FP), R10
	MOVQ offs+40(FP), R11
	MOVQ n+48(FP), BX
	MOVQ sc+56(FP), R12
	MOVQ sh+64(FP), R13
	MOVQ mode+72(FP), R14
	VMOVDQU32 (R11), Z2
	VMOVDQU32 64(R11), Z3
	TESTQ R14, R14
	JZ gcloop
	VMOVUPS (R12), Z8
	VMOVUPS 64(R12), Z9
	VMOVUPS (R13), Z10
	VMOVUPS 64(R13), Z11
gcloop:
	MOVLQSX (R9), AX
	MOVL (R10)(AX*4), DX
	VPBROADCASTD (R8), Z4
	VPADDD Z2, Z4, Z5
	VPADDD Z3, Z4, Z6
	KMOVW DX, K1
	KMOVW DX, K3
	SHRL $16, DX
	KMOVW DX, K2
	KMOVW DX, K4
	VPXORD Z0, Z0, Z0
	VPXORD Z1, Z1, Z1
	VGATHERDPS (SI)(Z5*4), K1, Z0
	VGATHERDPS (SI)(Z6*4), K2, Z1
	TESTQ R14, R14
	JZ gcstore
	VMULPS.Z Z8, Z0, K3, Z0
	VMULPS.Z Z9, Z1, K4, Z1
	VADDPS.Z Z10, Z0, K3, Z0
	VADDPS.Z Z11, Z1, K4, Z1
	CMPQ R14, $2
	JNE gcstore
	RELU(Z0, Z7)
	RELU(Z1, Z7)
gcstore:
	VMOVUPS Z0, (DI)
	VMOVUPS Z1, 64(DI)
	ADDQ $128, DI
	ADDQ $4, R8
	ADDQ $4, R9
	DECQ BX
	JNZ gcloop
	VZEROUPPER
	RET

