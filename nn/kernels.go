package nn

import "math"

// Hot inner loops shared by ops. They are written so the compiler removes
// bounds checks and emits no data-dependent branches (a ReLU mask over
// random signs would otherwise mispredict every other element).

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

// shiftedSums returns Σ(x−s) and Σ(x−s)² accumulated in float32 over
// four lanes.
func shiftedSums(x []float32, s float32) (float64, float64) {
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

// affineInto sets y = a·x + b (then ReLU if relu).
func affineInto(y, x []float32, a, b float32, relu bool) {
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

// bnGradSums returns Σd and Σd·(x−mu) where d is dy masked by the fused
// ReLU (y > 0) when relu is set.
func bnGradSums(dy, x, y []float32, mu float32, relu bool) (float64, float64) {
	x, y = x[:len(dy)], y[:len(dy)]
	var s0, s1, t0, t1 float32
	j := 0
	if relu {
		for ; j+2 <= len(dy); j += 2 {
			d0, d1 := passIfPositive(y[j], dy[j]), passIfPositive(y[j+1], dy[j+1])
			s0 += d0
			s1 += d1
			t0 += d0 * (x[j] - mu)
			t1 += d1 * (x[j+1] - mu)
		}
		for ; j < len(dy); j++ {
			d := passIfPositive(y[j], dy[j])
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

// bnGradInput writes (fresh) or adds dx = A·d + B·(x−mu) + C, d being dy
// masked by the fused ReLU when relu is set.
func bnGradInput(dx, dy, x, y []float32, mu, A, B, C float32, relu, fresh bool) {
	dy, x, y = dy[:len(dx)], x[:len(dx)], y[:len(dx)]
	switch {
	case relu && fresh:
		for j := range dx {
			dx[j] = A*passIfPositive(y[j], dy[j]) + B*(x[j]-mu) + C
		}
	case relu:
		for j := range dx {
			dx[j] += A*passIfPositive(y[j], dy[j]) + B*(x[j]-mu) + C
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
