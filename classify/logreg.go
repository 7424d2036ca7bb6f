package classify

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"

	"gonum.org/v1/gonum/optimize"
)

// LogRegOptions configures multinomial logistic regression. The zero value
// means C = 1, no class weights, tolerance 1e-4 and 1000 iterations.
type LogRegOptions struct {
	// C is the inverse L2 strength, as in scikit-learn: the fit minimises
	// C·Σᵢ sᵢ·CEᵢ + ½‖W‖² (intercepts unpenalised), sᵢ the class weight of yᵢ.
	C float64
	// Balanced weights each class by n / (classes present · count), like
	// scikit-learn class_weight="balanced". Overrides ClassWeight.
	Balanced bool
	// ClassWeight, when non-nil, gives one weight per class (length k).
	ClassWeight []float64
	// Tol stops L-BFGS when the largest gradient component of the loss
	// divided by Σ sᵢ falls below it (scikit-learn's tol). Default 1e-4.
	Tol float64
	// MaxIter bounds the L-BFGS iterations. Default 1000.
	MaxIter int
	// NoStandardize fits on the raw features instead of z-scored ones.
	NoStandardize bool
}

// LogReg is a fitted multinomial logistic regression over k classes. The
// exported fields are its whole state (for saving in a model bundle).
type LogReg struct {
	K, D int
	// Mean and Scale standardise a feature vector: (x − Mean) / Scale.
	Mean, Scale []float64
	// W holds k × D weights (row-major) and B the k intercepts, both on
	// standardised features. B sums to zero over the present classes.
	W, B []float64
	// Present marks classes seen in training; the others get probability 0.
	Present []bool
	// Iter is the number of L-BFGS iterations used.
	Iter int
}

// FitLogReg fits a multinomial logistic regression with L2 penalty to the
// n × d row-major features x and labels y in [0, k) by L-BFGS on z-scored
// features (population sd; constant features get scale 1, as scikit-learn's
// StandardScaler). Classes absent from y are kept out of the softmax.
func FitLogReg(x []float32, n, d int, y []int, k int, opt LogRegOptions) (*LogReg, error) {
	if n <= 0 || d <= 0 || len(x) != n*d {
		return nil, fmt.Errorf("classify: logreg features have %d values, want %d × %d", len(x), n, d)
	}
	if len(y) != n {
		return nil, fmt.Errorf("classify: logreg has %d labels for %d rows", len(y), n)
	}
	if opt.C == 0 {
		opt.C = 1
	}
	if opt.C < 0 {
		return nil, fmt.Errorf("classify: logreg C = %g must be positive", opt.C)
	}
	if opt.Tol == 0 {
		opt.Tol = 1e-4
	}
	if opt.MaxIter == 0 {
		opt.MaxIter = 1000
	}
	count := make([]int, k)
	for i, c := range y {
		if c < 0 || c >= k {
			return nil, fmt.Errorf("classify: logreg label %d of row %d outside [0, %d)", c, i, k)
		}
		count[c]++
	}
	m := &LogReg{K: k, D: d, Present: make([]bool, k), Mean: make([]float64, d), Scale: make([]float64, d)}
	var classes []int // present classes
	for c, nc := range count {
		if nc > 0 {
			m.Present[c] = true
			classes = append(classes, c)
		}
	}
	if len(classes) < 2 {
		return nil, fmt.Errorf("classify: logreg needs at least two labelled classes, got %d", len(classes))
	}
	weight := make([]float64, k)
	switch {
	case opt.Balanced:
		for _, c := range classes {
			weight[c] = float64(n) / float64(len(classes)*count[c])
		}
	case opt.ClassWeight != nil:
		if len(opt.ClassWeight) != k {
			return nil, fmt.Errorf("classify: logreg has %d class weights for %d classes", len(opt.ClassWeight), k)
		}
		copy(weight, opt.ClassWeight)
	default:
		for c := range weight {
			weight[c] = 1
		}
	}

	// Standardise into a float64 copy.
	xs := make([]float64, n*d)
	for i, v := range x {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, errors.New("classify: logreg features contain NaN or Inf")
		}
		xs[i] = float64(v)
	}
	for j := range d {
		m.Scale[j] = 1
	}
	if !opt.NoStandardize {
		for j := range d {
			var mean float64
			for i := range n {
				mean += xs[i*d+j]
			}
			mean /= float64(n)
			var v float64
			for i := range n {
				v += (xs[i*d+j] - mean) * (xs[i*d+j] - mean)
			}
			sd := math.Sqrt(v / float64(n))
			if sd < 10*math.SmallestNonzeroFloat64 || sd == 0 {
				sd = 1
			}
			m.Mean[j], m.Scale[j] = mean, sd
			for i := range n {
				xs[i*d+j] = (xs[i*d+j] - mean) / sd
			}
		}
	}

	kp := len(classes)
	sw := make([]float64, n)
	yi := make([]int, n) // index of y in classes
	pos := make([]int, k)
	for j, c := range classes {
		pos[c] = j
	}
	var swSum float64
	for i, c := range y {
		sw[i] = weight[c]
		yi[i] = pos[c]
		swSum += sw[i]
	}
	if !(swSum > 0) {
		return nil, errors.New("classify: logreg class weights sum to zero")
	}
	l2 := 1 / (opt.C * swSum)
	nw := kp * d // parameters: kp×d weights then kp intercepts
	z := make([]float64, kp)
	lossGrad := func(grad, p []float64) float64 {
		if grad != nil {
			clear(grad)
		}
		var loss float64
		for i := range n {
			xi := xs[i*d : (i+1)*d]
			for c := range kp {
				s := p[nw+c]
				wc := p[c*d : (c+1)*d]
				for j, v := range xi {
					s += wc[j] * v
				}
				z[c] = s
			}
			lse := logSumExp(z)
			loss += sw[i] * (lse - z[yi[i]])
			if grad == nil {
				continue
			}
			for c := range kp {
				r := math.Exp(z[c] - lse)
				if c == yi[i] {
					r--
				}
				r *= sw[i] / swSum
				gc := grad[c*d : (c+1)*d]
				for j, v := range xi {
					gc[j] += r * v
				}
				grad[nw+c] += r
			}
		}
		loss /= swSum
		for j := range nw {
			loss += 0.5 * l2 * p[j] * p[j]
			if grad != nil {
				grad[j] += l2 * p[j]
			}
		}
		return loss
	}
	prob := optimize.Problem{
		Func: func(p []float64) float64 { return lossGrad(nil, p) },
		Grad: func(g, p []float64) { lossGrad(g, p) },
	}
	settings := &optimize.Settings{
		GradientThreshold: opt.Tol,
		MajorIterations:   opt.MaxIter,
		Converger:         &optimize.FunctionConverge{Absolute: 1e-14, Relative: 1e-14, Iterations: 50},
	}
	res, err := optimize.Minimize(prob, make([]float64, nw+kp), settings, &optimize.LBFGS{})
	if err != nil && res == nil {
		return nil, fmt.Errorf("classify: logreg L-BFGS: %w", err)
	}
	m.Iter = res.Stats.MajorIterations
	if g := maxAbs(res.Gradient); g > opt.Tol {
		// Like scikit-learn's ConvergenceWarning: the model is still usable.
		slog.Warn("classify: logreg did not converge", "status", res.Status, "err", err, "iterations", m.Iter, "max_gradient", g, "tol", opt.Tol)
	}
	p := res.X
	var bMean float64
	for c := range kp {
		bMean += p[nw+c]
	}
	bMean /= float64(kp)
	m.W = make([]float64, k*d)
	m.B = make([]float64, k)
	for j, c := range classes {
		copy(m.W[c*d:(c+1)*d], p[j*d:(j+1)*d])
		m.B[c] = p[nw+j] - bMean
	}
	return m, nil
}

func logSumExp(z []float64) float64 {
	mx := slices.Max(z)
	var s float64
	for _, v := range z {
		s += math.Exp(v - mx)
	}
	return mx + math.Log(s)
}

// PredictProba returns the n × K row-major class probabilities of the rows
// of x (n × D). Classes absent from training have probability 0.
func (m *LogReg) PredictProba(x []float32, n int) ([]float64, error) {
	if len(x) != n*m.D {
		return nil, fmt.Errorf("classify: logreg input has %d values, want %d × %d", len(x), n, m.D)
	}
	out := make([]float64, n*m.K)
	z := make([]float64, 0, m.K)
	xi := make([]float64, m.D)
	for i := range n {
		for j := range m.D {
			xi[j] = (float64(x[i*m.D+j]) - m.Mean[j]) / m.Scale[j]
		}
		z = z[:0]
		for c := range m.K {
			if !m.Present[c] {
				continue
			}
			s := m.B[c]
			for j, v := range xi {
				s += m.W[c*m.D+j] * v
			}
			z = append(z, s)
		}
		lse := logSumExp(z)
		t := 0
		for c := range m.K {
			if m.Present[c] {
				out[i*m.K+c] = math.Exp(z[t] - lse)
				t++
			}
		}
	}
	return out, nil
}

// Predict returns the most probable class of each row of x (n × D).
func (m *LogReg) Predict(x []float32, n int) ([]int, error) {
	p, err := m.PredictProba(x, n)
	if err != nil {
		return nil, err
	}
	labels := make([]int, n)
	for i := range n {
		row := p[i*m.K : (i+1)*m.K]
		labels[i] = argmax(row)
	}
	return labels, nil
}

func argmax(v []float64) int {
	best := 0
	for j, x := range v {
		if x > v[best] {
			best = j
		}
	}
	return best
}
func maxAbs(v []float64) float64 {
	var m float64
	for _, x := range v {
		m = math.Max(m, math.Abs(x))
	}
	return m
}
