package nn

import (
	"math"
	"unsafe"
)

// Hot inner loops shared by ops. Each has a Go version (the *Go
// functions), written so the compiler removes bounds checks and emits no
// data-dependent branches (a ReLU mask over random signs would otherwise
// mispredict every other element), and on amd64 with AVX-512 an assembly
// version (kernels_amd64.s) that the un-suffixed function dispatches to.
// The element-wise kernels give bit-identical results either way; the sums
// differ in the order of float32 additions (tested within tolerance).

// simdMin is the shortest slice handed to an assembly kernel; sumMin the
// shortest for the sums (whose 64 partial lanes cost more to add up than
// a few values).
const (
	simdMin = 16
	sumMin  = 128
)

// shiftedSums returns Σ(x−s) and Σ(x−s)².
func shiftedSums(x []float32, s float32) (float64, float64) {
	if !useAVX512 || len(x) < sumMin {
		return shiftedSumsGo(x, s)
	}
	var lanes [64]float32
	shiftedSumsAVX(&x[0], len(x), s, &lanes[0])
	return sumLanes(lanes[:32]), sumLanes(lanes[32:])
}

// planeSums returns the two sums of a channel over its n planes (one per
// image) of inner values: sums(lanes, i) adds plane i's into the 64 lanes
// (AVX-512), perPlane(i) returns them in float64 (Go). Planes of at least
// sumMin values go through the lanes one plane at a time; smaller ones
// (deep layers' 8×8 or 4×4 maps) share the lanes for up to 4,096 values
// before they are added up in float64, instead of a scalar loop.
func planeSums(n, inner int, sums func(lanes *[64]float32, i int), perPlane func(i int) (float64, float64)) (float64, float64) {
	var a, b float64
	if !useAVX512 || inner < simdMin {
		for i := 0; i < n; i++ {
			x, y := perPlane(i)
			a += x
			b += y
		}
		return a, b
	}
	var lanes [64]float32
	for i, cnt := 0, 0; i < n; i++ {
		sums(&lanes, i)
		if cnt += inner; cnt >= 4096 || i == n-1 || inner >= sumMin {
			a += sumLanes(lanes[:32])
			b += sumLanes(lanes[32:])
			lanes, cnt = [64]float32{}, 0
		}
	}
	return a, b
}

// sumLanes adds partial sums in float64, in order.
func sumLanes(l []float32) float64 {
	var t float64
	for _, v := range l {
		t += float64(v)
	}
	return t
}

// affineInto sets y = a·x + b (then ReLU if relu).
func affineInto(y, x []float32, a, b float32, relu bool) {
	if !useAVX512 || len(y) < simdMin {
		affineIntoGo(y, x, a, b, relu)
		return
	}
	x = x[:len(y)]
	affineAVX(&y[0], &x[0], len(y), a, b, relu, false)
}

// affineStream is affineInto for outputs far larger than the caches, which
// are read back only by a later op: whole vectors go out with non-temporal
// stores (when y is 64-byte aligned), saving the read of every line before
// it is written. The values are affineInto's.
func affineStream(y, x []float32, a, b float32, relu bool) {
	if !useAVX512 || !useStreamStores || len(y) < simdMin || uintptr(unsafe.Pointer(&y[0]))%64 != 0 {
		affineInto(y, x, a, b, relu)
		return
	}
	x = x[:len(y)]
	affineAVX(&y[0], &x[0], len(y), a, b, relu, true)
}

// useStreamStores enables affineStream's non-temporal stores.
var useStreamStores = true

// streamBytes is the output size from which BatchNorm writes with
// affineStream.
const streamBytes = 16 << 20

// bnGradSums returns Σd and Σd·(x−mu) where d is dy masked by the fused
// ReLU when relu is set: passed where the forward output relu(ra·x + rb),
// recomputed bit for bit instead of read back, is positive.
func bnGradSums(dy, x []float32, mu, ra, rb float32, relu bool) (float64, float64) {
	if !useAVX512 || len(dy) < sumMin {
		return bnGradSumsGo(dy, x, mu, ra, rb, relu)
	}
	x = x[:len(dy)]
	var lanes [64]float32
	bnGradSumsAVX(&dy[0], &x[0], len(dy), mu, ra, rb, relu, &lanes[0])
	return sumLanes(lanes[:32]), sumLanes(lanes[32:])
}

// bnGradInput writes (fresh) or adds dx = A·d + B·(x−mu) + C, d being dy
// masked by the fused ReLU as in bnGradSums.
func bnGradInput(dx, dy, x []float32, mu, A, B, C, ra, rb float32, relu, fresh bool) {
	if !useAVX512 || len(dx) < simdMin {
		bnGradInputGo(dx, dy, x, mu, A, B, C, ra, rb, relu, fresh)
		return
	}
	dy, x = dy[:len(dx)], x[:len(dx)]
	bnGradInputAVX(&dx[0], &dy[0], &x[0], len(dx), mu, A, B, C, ra, rb, relu, fresh)
}

// stridedRows copies rows×n values, dst[r·ds + j] = src[r·ss + s·j].
func stridedRows(dst []float32, ds int, src []float32, ss, s, rows, n int) {
	if rows <= 0 || n <= 0 {
		return
	}
	dst = dst[:(rows-1)*ds+n]
	src = src[:(rows-1)*ss+s*(n-1)+1]
	if useAVX512 && s <= 2 {
		full, mst, mlo, mhi := tailMasks(n)
		if s == 1 {
			copyRowsAVX(&dst[0], &src[0], rows, ds, ss, full, mst)
		} else {
			gatherS2AVX(&dst[0], &src[0], rows, ds, ss, full, mlo, mhi, mst)
		}
		return
	}
	for r := 0; r < rows; r++ {
		d, v := dst[r*ds:r*ds+n], src[r*ss:]
		if s == 1 {
			copy(d, v)
			continue
		}
		for j := range d {
			d[j] = v[s*j]
		}
	}
}

// stridedRowsAdd is the adjoint of stridedRows: dst[r·ds + s·j] += src[r·ss + j].
func stridedRowsAdd(dst []float32, ds int, src []float32, ss, s, rows, n int) {
	if rows <= 0 || n <= 0 {
		return
	}
	dst = dst[:(rows-1)*ds+s*(n-1)+1]
	src = src[:(rows-1)*ss+n]
	if useAVX512 && s <= 2 {
		full, mst, mlo, mhi := tailMasks(n)
		if s == 1 {
			addRowsAVX(&dst[0], &src[0], rows, ds, ss, full, mst)
		} else {
			scatterAddS2AVX(&dst[0], &src[0], rows, ds, ss, full, mlo, mhi, mst)
		}
		return
	}
	for r := 0; r < rows; r++ {
		d, v := dst[r*ds:], src[r*ss:r*ss+n]
		for j, a := range v {
			d[s*j] += a
		}
	}
}

// tailMasks splits a row of n > 0 values into full 16-lane chunks and a
// last chunk of m (1..16) lanes: its mask, and for a stride-2 row the
// masks of the two 16-lane halves of the 2m−1 values it spans.
func tailMasks(n int) (full, mst, mlo, mhi int) {
	full = (n - 1) / 16
	m := n - 16*full
	lo, hi := min(2*m-1, 16), max(2*m-1-16, 0)
	return full, 1<<m - 1, 1<<lo - 1, 1<<hi - 1
}

// relu32 returns max(t, 0) without a branch (NaN is kept, −0 becomes +0).
func relu32(t float32) float32 {
	b := math.Float32bits(t)
	return math.Float32frombits(b &^ uint32(int32(b)>>31))
}

// passIfPositive returns d where y > 0 and 0 where y is +0, without a
// branch. y must be a ReLU output (never negative).
func passIfPositive(y, d float32) float32 {
	m := ^uint32(int32(math.Float32bits(y)-1) >> 31)
	return math.Float32frombits(math.Float32bits(d) & m)
}

// shiftedSumsGo returns Σ(x−s) and Σ(x−s)² accumulated in float32 over
// four lanes.
func shiftedSumsGo(x []float32, s float32) (float64, float64) {
	var a0, a1, a2, a3, q0, q1, q2, q3 float32
	i := 0
	for ; i+4 <= len(x); i += 4 {
		v := x[i : i+4 : i+4]
		d0, d1, d2, d3 := v[0]-s, v[1]-s, v[2]-s, v[3]-s
		a0 += d0
		a1 += d1
		a2 += d2
		a3 += d3
		q0 += d0 * d0
		q1 += d1 * d1
		q2 += d2 * d2
		q3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := x[i] - s
		a0 += d
		q0 += d * d
	}
	return float64(a0) + float64(a1) + float64(a2) + float64(a3), float64(q0) + float64(q1) + float64(q2) + float64(q3)
}

// affineIntoGo sets y = a·x + b (then ReLU if relu).
func affineIntoGo(y, x []float32, a, b float32, relu bool) {
	x = x[:len(y)]
	if relu {
		for j, v := range x {
			y[j] = relu32(a*v + b)
		}
		return
	}
	for j, v := range x {
		y[j] = a*v + b
	}
}

// bnGradSumsGo is bnGradSums' Go loop.
func bnGradSumsGo(dy, x []float32, mu, ra, rb float32, relu bool) (float64, float64) {
	x = x[:len(dy)]
	var s0, s1, t0, t1 float32
	j := 0
	if relu {
		for ; j+2 <= len(dy); j += 2 {
			d0 := passIfPositive(relu32(ra*x[j]+rb), dy[j])
			d1 := passIfPositive(relu32(ra*x[j+1]+rb), dy[j+1])
			s0 += d0
			s1 += d1
			t0 += d0 * (x[j] - mu)
			t1 += d1 * (x[j+1] - mu)
		}
		for ; j < len(dy); j++ {
			d := passIfPositive(relu32(ra*x[j]+rb), dy[j])
			s0 += d
			t0 += d * (x[j] - mu)
		}
	} else {
		for ; j+2 <= len(dy); j += 2 {
			s0 += dy[j]
			s1 += dy[j+1]
			t0 += dy[j] * (x[j] - mu)
			t1 += dy[j+1] * (x[j+1] - mu)
		}
		for ; j < len(dy); j++ {
			s0 += dy[j]
			t0 += dy[j] * (x[j] - mu)
		}
	}
	return float64(s0) + float64(s1), float64(t0) + float64(t1)
}

// bnGradInputGo is bnGradInput's Go loop.
func bnGradInputGo(dx, dy, x []float32, mu, A, B, C, ra, rb float32, relu, fresh bool) {
	dy, x = dy[:len(dx)], x[:len(dx)]
	switch {
	case relu && fresh:
		for j := range dx {
			dx[j] = A*passIfPositive(relu32(ra*x[j]+rb), dy[j]) + B*(x[j]-mu) + C
		}
	case relu:
		for j := range dx {
			dx[j] += A*passIfPositive(relu32(ra*x[j]+rb), dy[j]) + B*(x[j]-mu) + C
		}
	case fresh:
		for j := range dx {
			dx[j] = A*dy[j] + B*(x[j]-mu) + C
		}
	default:
		for j := range dx {
			dx[j] += A*dy[j] + B*(x[j]-mu) + C
		}
	}
}

// sum32 returns Σx accumulated over four float32 lanes.
func sum32(s []float32) float64 {
	var a0, a1, a2, a3 float32
	i := 0
	for ; i+4 <= len(s); i += 4 {
		v := s[i : i+4 : i+4]
		a0 += v[0]
		a1 += v[1]
		a2 += v[2]
		a3 += v[3]
	}
	for ; i < len(s); i++ {
		a0 += s[i]
	}
	return float64(a0) + float64(a1) + float64(a2) + float64(a3)
}

// sqDev32 returns Σ(x−mu)².
func sqDev32(s []float32, mu float32) float64 {
	_, q := shiftedSums(s, mu)
	return q
}

// gatherIdx sets dst[q] = src[idx[q]], or 0 where idx[q] < 0; every index
// must be below len(src).
func gatherIdx(dst, src []float32, idx []int32) {
	idx = idx[:len(dst)]
	if useAVX512 && len(dst) >= simdMin {
		gatherIdxAVX(&dst[0], &src[0], &idx[0], len(dst))
		return
	}
	for q, off := range idx {
		if off >= 0 {
			dst[q] = src[off]
		} else {
			dst[q] = 0
		}
	}
}

// adamw applies one AdamW update to w with gradient g and moments m, v
// (all the same length).
func adamw(w, g, m, v []float32, decay, b1, b2, sqrtBC2, eps, stepSize float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	if useAVX512 && len(w) >= simdMin {
		adamwAVX(&w[0], &g[0], &m[0], &v[0], len(w), decay, b1, 1-b1, b2, 1-b2, sqrtBC2, eps, stepSize)
		return
	}
	adamwGo(w, g, m, v, decay, b1, b2, sqrtBC2, eps, stepSize)
}

// adamwGo is adamw's Go loop.
func adamwGo(w, g, m, v []float32, decay, b1, b2, sqrtBC2, eps, stepSize float32) {
	g, m, v = g[:len(w)], m[:len(w)], v[:len(w)]
	for i := range w {
		w[i] *= decay
		m[i] = b1*m[i] + (1-b1)*g[i]
		v[i] = b2*v[i] + (1-b2)*g[i]*g[i]
		denom := float32(math.Sqrt(float64(v[i])))/sqrtBC2 + eps
		w[i] -= stepSize * m[i] / denom
	}
}

// scatterAddIdx adds src[q] to dst[idx[q]] where idx[q] >= 0, for rows of
// rowLen values (len(src) = len(idx) = rows·rowLen); the indices within a
// row must be distinct and below len(dst).
func scatterAddIdx(dst, src []float32, idx []int32, rowLen int) {
	rows := len(idx) / rowLen
	src = src[:len(idx)]
	if useAVX512 && rows > 0 {
		scatterAddIdxAVX(&dst[0], &src[0], &idx[0], rows, rowLen)
		return
	}
	for q, off := range idx {
		if off >= 0 {
			dst[off] += src[q]
		}
	}
}
