package nn

import (
	"fmt"
	"math"

	"github.com/spotfuse/spotfuse/tensor"
)

// scalar wraps one value as a [1] tensor.
func scalar(v float64) *tensor.Tensor { return tensor.FromSlice([]float32{float32(v)}, 1) }

// CrossEntropy is the mean cross-entropy of logits [N, K] against class
// indices targets (len N), like torch.nn.functional.cross_entropy: with
// classWeights (len K, may be nil) the mean is weighted,
// Σ w[yᵢ]·(−log pᵢ[yᵢ]) / Σ w[yᵢ]. A negative target marks a row to ignore.
// If every row is ignored the loss is 0.
func CrossEntropy(logits *Var, targets []int, classWeights []float32) *Var {
	ls := logits.Value.Shape
	if len(ls) != 2 || ls[0] != len(targets) {
		panic(fmt.Sprintf("nn: CrossEntropy logits %v with %d targets", ls, len(targets)))
	}
	n, k := ls[0], ls[1]
	if classWeights != nil && len(classWeights) != k {
		panic(fmt.Sprintf("nn: CrossEntropy with %d class weights for %d classes", len(classWeights), k))
	}
	weight := func(y int) float64 {
		if classWeights == nil {
			return 1
		}
		return float64(classWeights[y])
	}
	logp := make([]float32, n*k)
	var loss, wsum float64
	for i, y := range targets {
		if y >= k {
			panic(fmt.Sprintf("nn: CrossEntropy target %d for %d classes", y, k))
		}
		logSoftmaxRow(logp[i*k:(i+1)*k], logits.Value.Data[i*k:(i+1)*k])
		if y < 0 {
			continue
		}
		w := weight(y)
		loss -= w * float64(logp[i*k+y])
		wsum += w
	}
	if wsum > 0 {
		loss /= wsum
	}
	v := newVar(scalar(loss), logits)
	if v.requiresGrad {
		v.backward = func() {
			if wsum == 0 {
				return
			}
			g, gl := v.Grad.Data[0], logits.grad()
			for i, y := range targets {
				if y < 0 {
					continue
				}
				s := g * float32(weight(y)/wsum)
				for j := 0; j < k; j++ {
					p := float32(math.Exp(float64(logp[i*k+j])))
					if j == y {
						p--
					}
					gl[i*k+j] += s * p
				}
			}
		}
	}
	return v
}

// MSE is the mean squared error between pred and target (same shape).
func MSE(pred, target *Var) *Var {
	if !tensor.SameShape(pred.Value.Shape, target.Value.Shape) {
		panic(fmt.Sprintf("nn: MSE shapes %v and %v", pred.Value.Shape, target.Value.Shape))
	}
	return MaskedMSE(pred, target, nil)
}

// MaskedMSE is the squared error averaged over the elements where mask is
// non-zero, weighted by mask: Σ m·(p−t)² / Σ m. A nil mask means all ones.
// An all-zero mask gives 0.
func MaskedMSE(pred, target *Var, mask []float32) *Var {
	P, T := pred.Value.Data, target.Value.Data
	if !tensor.SameShape(pred.Value.Shape, target.Value.Shape) || (mask != nil && len(mask) != len(P)) {
		panic(fmt.Sprintf("nn: MaskedMSE shapes %v and %v with a mask of %d", pred.Value.Shape, target.Value.Shape, len(mask)))
	}
	m := func(i int) float32 {
		if mask == nil {
			return 1
		}
		return mask[i]
	}
	var s, msum float64
	for i := range P {
		d := float64(P[i] - T[i])
		s += float64(m(i)) * d * d
		msum += float64(m(i))
	}
	if msum > 0 {
		s /= msum
	}
	v := newVar(scalar(s), pred, target)
	if v.requiresGrad {
		v.backward = func() {
			if msum == 0 {
				return
			}
			k := 2 * v.Grad.Data[0] / float32(msum)
			gp, gt := pred.gradIfNeeded(), target.gradIfNeeded()
			for i := range P {
				d := k * m(i) * (P[i] - T[i])
				if gp != nil {
					gp[i] += d
				}
				if gt != nil {
					gt[i] -= d
				}
			}
		}
	}
	return v
}

// InfoNCE is the symmetric contrastive (CLIP) loss between the rows of a and
// b (both [N, D]): rows are L2-normalised, logits = a·bᵀ/temperature, and the
// loss is the mean of the cross-entropies of matching row i to column i and
// column i to row i.
func InfoNCE(a, b *Var, temperature float32) *Var {
	as, bs := a.Value.Shape, b.Value.Shape
	if len(as) != 2 || !tensor.SameShape(as, bs) {
		panic(fmt.Sprintf("nn: InfoNCE shapes %v and %v", as, bs))
	}
	if temperature <= 0 {
		panic(fmt.Sprintf("nn: InfoNCE temperature %g", temperature))
	}
	n := as[0]
	logits := Scale(MatMul(L2Normalize(a), Transpose2D(L2Normalize(b))), 1/temperature)
	targets := make([]int, n)
	for i := range targets {
		targets[i] = i
	}
	return Scale(Add(CrossEntropy(logits, targets, nil), CrossEntropy(Transpose2D(logits), targets, nil)), 0.5)
}

// nbEps guards the logarithms of the negative binomial, as in scVI.
const nbEps = 1e-8

// NegBinomialNLL is the negative log-likelihood of counts [N, G] under a
// negative binomial with mean mu [N, G] and inverse dispersion theta ([N, G]
// or [G], broadcast over rows), in the scVI parameterisation, summed over
// genes and averaged over rows (cells).
func NegBinomialNLL(mu, theta *Var, counts *tensor.Tensor) *Var {
	ms, cs := mu.Value.Shape, counts.Shape
	if !tensor.SameShape(ms, cs) || len(ms) != 2 {
		panic(fmt.Sprintf("nn: NegBinomialNLL mu %v with counts %v", ms, cs))
	}
	n, g := ms[0], ms[1]
	th := theta.Value.Data
	perGene := len(th) == g && !(len(th) == n*g)
	if !perGene && len(th) != n*g {
		panic(fmt.Sprintf("nn: NegBinomialNLL theta %v for mu %v", theta.Value.Shape, ms))
	}
	ti := func(i int) int {
		if perGene {
			return i % g
		}
		return i
	}
	M, X := mu.Value.Data, counts.Data
	var nll float64
	for i := range M {
		m, t, x := float64(M[i]), float64(th[ti(i)]), float64(X[i])
		lgXT, _ := math.Lgamma(x + t)
		lgT, _ := math.Lgamma(t)
		lgX1, _ := math.Lgamma(x + 1)
		L := math.Log(t + m + nbEps)
		ll := t*(math.Log(t+nbEps)-L) + x*(math.Log(m+nbEps)-L) + lgXT - lgT - lgX1
		nll -= ll
	}
	nll /= float64(n)
	v := newVar(scalar(nll), mu, theta)
	if v.requiresGrad {
		v.backward = func() {
			s := float64(v.Grad.Data[0]) / float64(n)
			gm, gt := mu.gradIfNeeded(), theta.gradIfNeeded()
			for i := range M {
				m, t, x := float64(M[i]), float64(th[ti(i)]), float64(X[i])
				den := t + m + nbEps
				if gm != nil { // −∂ll/∂μ
					gm[i] += float32(s * ((t+x)/den - x/(m+nbEps)))
				}
				if gt != nil { // −∂ll/∂θ
					d := math.Log(t+nbEps) + t/(t+nbEps) - math.Log(den) - (t+x)/den + digamma(x+t) - digamma(t)
					gt[ti(i)] -= float32(s * d)
				}
			}
		}
	}
	return v
}

// digamma is ψ(x) for x > 0: recurrence up to x ≥ 6, then the asymptotic
// series.
func digamma(x float64) float64 {
	var r float64
	for x < 6 {
		r -= 1 / x
		x++
	}
	f := 1 / (x * x)
	return r + math.Log(x) - 0.5/x - f*(1.0/12-f*(1.0/120-f*(1.0/252-f*(1.0/240-f*(1.0/132)))))
}

// GaussianKL is KL(N(mu, exp(logvar)) ‖ N(0, I)) for rows of mu and logvar
// [N, D], summed over D and averaged over rows.
func GaussianKL(mu, logvar *Var) *Var {
	if !tensor.SameShape(mu.Value.Shape, logvar.Value.Shape) || len(mu.Value.Shape) != 2 {
		panic(fmt.Sprintf("nn: GaussianKL shapes %v and %v", mu.Value.Shape, logvar.Value.Shape))
	}
	n := mu.Value.Shape[0]
	M, L := mu.Value.Data, logvar.Value.Data
	var kl float64
	for i := range M {
		m, l := float64(M[i]), float64(L[i])
		kl += -0.5 * (1 + l - m*m - math.Exp(l))
	}
	kl /= float64(n)
	v := newVar(scalar(kl), mu, logvar)
	if v.requiresGrad {
		v.backward = func() {
			s := v.Grad.Data[0] / float32(n)
			if mu.needs() {
				gm := mu.grad()
				for i, m := range M {
					gm[i] += s * m
				}
			}
			if logvar.needs() {
				gl := logvar.grad()
				for i, l := range L {
					gl[i] += s * 0.5 * (float32(math.Exp(float64(l))) - 1)
				}
			}
		}
	}
	return v
}
