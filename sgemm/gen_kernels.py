#!/usr/bin/env python3
"""Writes sgemm_amd64.s: the AVX-512 micro-kernels (go generate ./sgemm)."""


def kernel(rows, name):
    L = [f'''// func {name}(k int, a, b, c *float32, ldc int, accumulate bool)
TEXT ·{name}(SB), NOSPLIT, $0-41
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ b+16(FP), BX
	MOVQ c+24(FP), DI
	MOVQ ldc+32(FP), R8
	MOVBLZX accumulate+40(FP), R9
	SHLQ $2, R8''']
    for i in range(2 * rows):
        L.append(f"\tVPXORD Z{i}, Z{i}, Z{i}")
    L.append(f"\tTESTQ CX, CX\n\tJLE {name}_store\n{name}_loop:")
    L.append("\tVMOVUPS (BX), Z24\n\tVMOVUPS 64(BX), Z25")
    for i in range(rows):
        t = 26 + (i % 6)
        L.append(f"\tVBROADCASTSS {4*i}(AX), Z{t}")
        L.append(f"\tVFMADD231PS Z24, Z{t}, Z{2*i}")
        L.append(f"\tVFMADD231PS Z25, Z{t}, Z{2*i+1}")
    L.append(f"\tADDQ ${4*rows}, AX\n\tADDQ $128, BX\n\tDECQ CX\n\tJNZ {name}_loop")
    L.append(f"{name}_store:\n\tTESTQ R9, R9\n\tJZ {name}_put")
    for i in range(rows):
        L.append(f"\tVADDPS (DI), Z{2*i}, Z{2*i}\n\tVADDPS 64(DI), Z{2*i+1}, Z{2*i+1}\n"
                 f"\tVMOVUPS Z{2*i}, (DI)\n\tVMOVUPS Z{2*i+1}, 64(DI)\n\tADDQ R8, DI")
    L.append(f"\tVZEROUPPER\n\tRET\n{name}_put:")
    for i in range(rows):
        L.append(f"\tVMOVUPS Z{2*i}, (DI)\n\tVMOVUPS Z{2*i+1}, 64(DI)\n\tADDQ R8, DI")
    L.append("\tVZEROUPPER\n\tRET\n")
    return "\n".join(L)


def dot_kernel():
    """dotNT4x4: sixteen dot-product accumulators of 4 rows of a by 4 rows of b."""
    L = ['''// func dotNT4x4(k int, a *float32, lda int, b *float32, ldb int, out *float32)
// out[16(4i+j):] accumulates the 16-lane partial sums of Σ_p a[i·lda+p]·b[j·ldb+p],
// i, j < 4 (the caller adds the lanes at the end).
TEXT ·dotNT4x4(SB), NOSPLIT, $0-48
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), AX
	MOVQ lda+16(FP), R8
	MOVQ b+24(FP), BX
	MOVQ ldb+32(FP), R9
	MOVQ out+40(FP), DI
	SHLQ $2, R8
	SHLQ $2, R9''']
    for i in range(16):
        L.append(f"\tVMOVUPS {64*i}(DI), Z{i}")
    L.append('''	LEAQ (AX)(R8*1), R10
	LEAQ (R10)(R8*1), R11
	LEAQ (R11)(R8*1), R12
	LEAQ (BX)(R9*1), R13
	LEAQ (R13)(R9*1), R14
	LEAQ (R14)(R9*1), R15
	MOVQ CX, DX
	ANDQ $15, CX
	MOVQ $1, SI
	SHLQ CX, SI
	DECQ SI
	KMOVW SI, K1
	MOVQ DX, CX
	SHRQ $4, CX
	XORQ SI, SI
	TESTQ CX, CX
	JLE dtail
dloop:''')

    def body(masked):
        out = []
        ld = "VMOVUPS.Z" if masked else "VMOVUPS"
        mk = ", K1" if masked else ""
        for r, reg in enumerate(["AX", "R10", "R11", "R12"]):
            out.append(f"\t{ld} ({reg})(SI*1){mk}, Z{16+r}")
        for r, reg in enumerate(["BX", "R13", "R14", "R15"]):
            out.append(f"\t{ld} ({reg})(SI*1){mk}, Z{20+r}")
        for i in range(4):
            for j in range(4):
                out.append(f"\tVFMADD231PS Z{20+j}, Z{16+i}, Z{4*i+j}")
        return out
    L += body(False)
    L.append("\tADDQ $64, SI\n\tDECQ CX\n\tJNZ dloop\ndtail:")
    L += body(True)
    for i in range(16):
        L.append(f"\tVMOVUPS Z{i}, {64*i}(DI)")
    L.append("\tVZEROUPPER\n\tRET\n")
    return "\n".join(L)


def transpose_kernel():
    """transpose16: a 16×16 block, dst[c·ldd + r] = src[r·lds + c]."""
    L = ['''// func transpose16(dst *float32, ldd int, src *float32, lds, nrows, mask int)
// dst[c·ldd + r] = src[r·lds + c] for r, c < 16, reading only the first
// nrows rows of src (the others count as zero) and storing the lanes of
// mask (r < 16) of each row of dst.
TEXT ·transpose16(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	MOVQ nrows+32(FP), CX
	MOVQ mask+40(FP), AX
	KMOVW AX, K1
	SHLQ $2, R8
	SHLQ $2, R9''']
    for r in range(16):
        L.append(f"\tVPXORD Z{r}, Z{r}, Z{r}")
    for r in range(16):
        L.append(f"\tCMPQ CX, ${r}\n\tJLE tloaded\n\tVMOVUPS (SI), Z{r}\n\tADDQ R9, SI")
    L.append("tloaded:")
    # step 1: 32-bit interleave of row pairs -> Z16..Z31
    for q in range(8):
        a, b = 2 * q, 2 * q + 1
        L.append(f"\tVUNPCKLPS Z{b}, Z{a}, Z{16+2*q}")
        L.append(f"\tVUNPCKHPS Z{b}, Z{a}, Z{17+2*q}")
    # step 2: 64-bit interleave -> Z0..Z15 (u)
    for g in range(4):  # rows 4g..4g+3: t regs 16+4g .. 16+4g+3 = (lo01, hi01, lo23, hi23)
        t0, t1, t2, t3 = 16 + 4 * g, 17 + 4 * g, 18 + 4 * g, 19 + 4 * g
        u = 4 * g
        L.append(f"\tVUNPCKLPD Z{t2}, Z{t0}, Z{u}")
        L.append(f"\tVUNPCKHPD Z{t2}, Z{t0}, Z{u+1}")
        L.append(f"\tVUNPCKLPD Z{t3}, Z{t1}, Z{u+2}")
        L.append(f"\tVUNPCKHPD Z{t3}, Z{t1}, Z{u+3}")
    # u[4g+m] lane k holds column 4k+m of rows 4g..4g+3
    for m in range(4):
        a, b, c, d = m, 4 + m, 8 + m, 12 + m
        L.append(f"\tVSHUFF32X4 $0x44, Z{b}, Z{a}, Z16")
        L.append(f"\tVSHUFF32X4 $0xEE, Z{b}, Z{a}, Z17")
        L.append(f"\tVSHUFF32X4 $0x44, Z{d}, Z{c}, Z18")
        L.append(f"\tVSHUFF32X4 $0xEE, Z{d}, Z{c}, Z19")
        L.append("\tVSHUFF32X4 $0x88, Z18, Z16, Z20")
        L.append("\tVSHUFF32X4 $0xDD, Z18, Z16, Z21")
        L.append("\tVSHUFF32X4 $0x88, Z19, Z17, Z22")
        L.append("\tVSHUFF32X4 $0xDD, Z19, Z17, Z23")
        for k, z in enumerate([20, 21, 22, 23]):
            col = 4 * k + m
            L.append(f"\tMOVQ ${col}, AX\n\tIMULQ R8, AX\n\tVMOVUPS Z{z}, K1, (DI)(AX*1)")
    L.append("\tVZEROUPPER\n\tRET\n")
    return "\n".join(L)


COPY = '''// func copyBlock(dst *float32, ldd int, src *float32, lds, rows, n int)
// dst[r·ldd + j] = src[r·lds + j] for r < rows, j < n ≤ 32.
TEXT ·copyBlock(SB), NOSPLIT, $0-48
	MOVQ dst+0(FP), DI
	MOVQ ldd+8(FP), R8
	MOVQ src+16(FP), SI
	MOVQ lds+24(FP), R9
	MOVQ rows+32(FP), DX
	MOVQ n+40(FP), BX
	SHLQ $2, R8
	SHLQ $2, R9
	MOVQ BX, CX
	CMPQ CX, $16
	JLE cb1
	MOVQ $16, CX
cb1:
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K1
	MOVQ BX, CX
	SUBQ $16, CX
	JGE cb2
	XORQ CX, CX
cb2:
	MOVQ $1, AX
	SHLQ CX, AX
	DECQ AX
	KMOVW AX, K2
	TESTQ DX, DX
	JLE cbdone
cbloop:
	VMOVUPS.Z (SI), K1, Z0
	VMOVUPS.Z 64(SI), K2, Z1
	VMOVUPS Z0, K1, (DI)
	VMOVUPS Z1, K2, 64(DI)
	ADDQ R9, SI
	ADDQ R8, DI
	DECQ DX
	JNZ cbloop
cbdone:
	VZEROUPPER
	RET
'''


def peak_kernel():
    """fmaLoop: n iterations of 12 independent 16-lane FMAs (the FMA peak)."""
    L = ['''// func fmaLoop(n int)
// n iterations of twelve independent 16-lane fused multiply-adds.
TEXT ·fmaLoop(SB), NOSPLIT, $0-8
	MOVQ n+0(FP), CX
	VPXORD Z12, Z12, Z12
	VPXORD Z13, Z13, Z13''']
    for i in range(12):
        L.append(f"\tVPXORD Z{i}, Z{i}, Z{i}")
    L.append("\tTESTQ CX, CX\n\tJLE fdone\nfloop:")
    for i in range(12):
        L.append(f"\tVFMADD231PS Z12, Z13, Z{i}")
    L.append("\tDECQ CX\n\tJNZ floop\nfdone:\n\tVZEROUPPER\n\tRET\n")
    return "\n".join(L)


HEAD = '''// Code generated by gen_kernels.py; DO NOT EDIT.

//go:build amd64 && !purego

#include "textflag.h"

// kernel12x32 and kernel8x32 compute the tile c[i·ldc + j] (+)= Σ_p a[h·p + i]·b[32p + j]
// (h = 12 or 8 rows, 32 columns) of a product from packed panels (sgemm.go):
// 2h zmm accumulators, two 16-lane loads of b and h broadcasts of a per step
// of p.

'''

if __name__ == "__main__":
    with open("sgemm_amd64.s", "w") as f:
        f.write(HEAD + kernel(12, "kernel12x32") + "\n" + kernel(8, "kernel8x32") + "\n" + dot_kernel() + "\n" + transpose_kernel() + "\n" + COPY + "\n" + peak_kernel())
