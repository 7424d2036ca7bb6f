// Package nn is spotfuse's reverse-mode automatic differentiation engine:
// a graph of Vars (micrograd style: each op records its parents and a
// backward closure written next to its forward code), the ops and layers the
// models need (convolutions, normalisation, attention, ...), losses,
// optimizers, initialisers and safetensors I/O.
//
// All values are float32 tensors from package tensor; gradients are
// accumulated in float32. Everything random takes an explicit *rand.Rand.
// With the same seed and the same tensor.Threads() the results are
// bit-identical from run to run.
package nn

import (
	"fmt"
	"sync/atomic"
	"unsafe"

	"github.com/spotfuse/spotfuse/tensor"
)

// Var is a node of the computation graph: a value, its gradient (allocated
// on first accumulation) and how to propagate the gradient to its parents.
type Var struct {
	Value *tensor.Tensor
	Grad  *tensor.Tensor

	requiresGrad bool
	pooled       bool      // Value's buffer came from the pool and is v's alone
	uses         int32     // recorded ops that took v (a recorded result) as an input
	lazyOK       bool      // v's backward can take its gradient as a lazyGrad
	lazy         *lazyGrad // v's gradient as a function, from its only consumer
	planeGrad    *planeGradSums
	planeStats   []float64      // per-plane statistics of v for a BatchNorm (planeStatsOf), or nil
	deferred     *channelAffine // v's value, not stored (v.Value has its shape and no data)
	parents      []*Var
	backward     func() // reads v.Grad, accumulates into parents' Grad
}

// Param returns a trainable leaf that accumulates a gradient.
func Param(t *tensor.Tensor) *Var { return &Var{Value: t, requiresGrad: true} }

// Const returns a leaf that needs no gradient (inputs, targets).
func Const(t *tensor.Tensor) *Var { return &Var{Value: t} }

// RequiresGrad reports whether gradients flow to v.
func (v *Var) RequiresGrad() bool { return v.requiresGrad }

// Shape returns v.Value.Shape.
func (v *Var) Shape() []int { return v.Value.Shape }

// Item returns the only element of a one-element Var.
func (v *Var) Item() float32 {
	if v.Value.Size() != 1 {
		panic(fmt.Sprintf("nn: Item on a Var of shape %v", v.Value.Shape))
	}
	return v.Value.Data[0]
}

// ZeroGrad drops v's gradient.
func (v *Var) ZeroGrad() { v.Grad = nil }

// Detach returns a Const sharing v's value.
func (v *Var) Detach() *Var { return Const(v.Value) }

var noGrad atomic.Int32

// NoGrad runs fn with graph recording switched off: ops called inside build
// no graph and keep no intermediate buffers for backward (inference mode).
// It is meant for a single goroutine driving the model.
func NoGrad(fn func()) {
	noGrad.Add(1)
	defer noGrad.Add(-1)
	fn()
}

// GradEnabled reports whether ops record the graph (false inside NoGrad).
func GradEnabled() bool { return noGrad.Load() == 0 }

// newVar makes the result of an op. If graph recording is on and any parent
// requires a gradient, the result does too and keeps its parents; the caller
// then sets backward (only when out.requiresGrad is true).
func newVar(value *tensor.Tensor, parents ...*Var) *Var {
	out := &Var{Value: value}
	if !GradEnabled() {
		return out
	}
	for _, p := range parents {
		if p != nil && p.requiresGrad {
			out.requiresGrad = true
			out.parents = parents
			break
		}
	}
	if out.requiresGrad {
		// Count the readers of recorded results (not of leaves, which
		// goroutines may share: parameters read by concurrent graphs).
		for _, p := range parents {
			if p != nil && p.parents != nil {
				p.uses++
			}
		}
	}
	return out
}

// lazyGrad is a gradient handed to its Var's backward as a function
// instead of a buffer, so that it is computed where it is used, in cache:
// BatchNorm gives it to the convolution before it (whose output it alone
// reads) instead of writing the full input gradient to memory for the
// convolution to read back. fill writes the gradient of images [i0, i1) of
// a [N, C, P] value into dst, channel rows ld apart and image i0+j's P
// values at j·P; free runs once the backward is done with it.
type lazyGrad struct {
	fill func(dst []float32, ld, i0, i1 int)
	free func()
}

// planeGradSums lets the op that writes a BatchNorm output's whole
// gradient image by image (a convolution that is its only reader) compute
// the per-plane sums the BatchNorm's backward needs while each image's
// gradient is still in cache, instead of the BatchNorm reading the gradient
// back from memory. fill(i, g) takes image i's gradient g [C, P]; ready
// says that every image's has been taken.
type planeGradSums struct {
	fill  func(i int, g []float32)
	ready bool
}

// newPooledVar is newVar for a value from newUninit owned by the result
// alone: BackwardRelease may return it to the pool.
func newPooledVar(value *tensor.Tensor, parents ...*Var) *Var {
	v := newVar(value, parents...)
	v.pooled = true
	return v
}

// grad returns v's gradient buffer for accumulation, allocating zeros on
// first use.
func (v *Var) grad() []float32 {
	if v.Grad == nil {
		b := getBuf(v.size())
		parallelFor(len(b), func(lo, hi int) { clear(b[lo:hi]) })
		v.Grad = tensor.FromSlice(b, v.Value.Shape...)
	}
	return v.Grad.Data
}

// gradFresh is grad for an op that writes every element: if the buffer is
// new (fresh is true) its contents are undefined and must be assigned, not
// accumulated into.
func (v *Var) gradFresh() (g []float32, fresh bool) {
	if v.Grad == nil {
		v.Grad = tensor.FromSlice(getBuf(v.size()), v.Value.Shape...)
		return v.Grad.Data, true
	}
	return v.Grad.Data, false
}

// size is the number of values of v (stored or not).
func (v *Var) size() int {
	if v.deferred != nil {
		return tensor.Numel(v.Value.Shape)
	}
	return v.Value.Size()
}

// needs reports whether gradient must be propagated to v.
func (v *Var) needs() bool { return v != nil && v.requiresGrad }

// gradIfNeeded returns v's gradient to accumulate into, or nil when v
// needs none.
func (v *Var) gradIfNeeded() []float32 {
	if !v.needs() {
		return nil
	}
	return v.grad()
}

// Backward computes the gradient of the scalar v with respect to every Var
// it depends on that requires a gradient, accumulating into their Grad.
// Gradients of intermediate results are released afterwards; leaves (Params)
// keep theirs.
func (v *Var) Backward() {
	if v.Value.Size() != 1 {
		panic(fmt.Sprintf("nn: Backward on a non-scalar of shape %v", v.Value.Shape))
	}
	v.BackwardFrom(tensor.FromSlice([]float32{1}, v.Value.Shape...))
}

// BackwardRelease is Backward that also recycles the memory of the graph's
// intermediate results as soon as backpropagation is past them, so the
// next step reuses it instead of allocating and zeroing fresh buffers (a
// conv4 training step at batch 64 allocates ~125 MB of activations). After
// it, the Value of every intermediate Var of the graph (not v's, not the
// leaves') is nil and its tensor's Data is empty: using one fails loudly.
// Call it only when nothing but v is read after the backward pass.
func (v *Var) BackwardRelease() {
	if v.Value.Size() != 1 {
		panic(fmt.Sprintf("nn: Backward on a non-scalar of shape %v", v.Value.Shape))
	}
	v.backwardFrom(tensor.FromSlice([]float32{1}, v.Value.Shape...), true)
}

// Free returns the memory of v's value (when an op allocated it from the
// engine's pool) and of its gradient to the pool, for the next ops to
// reuse, and leaves v empty: its Value is nil and the tensor's Data is
// cleared, so a later use fails loudly. Call it on results nothing reads
// any more, such as a benchmark's outputs; BackwardRelease does it for a
// whole graph.
func (v *Var) Free() {
	if v.Grad != nil {
		putBuf(v.Grad.Data)
		v.Grad = nil
	}
	v.releaseValue()
}

// releaseValue returns v's value to the pool when an op allocated it there
// (pooled) and empties v.
func (v *Var) releaseValue() {
	if v.pooled && v.Value != nil {
		putBuf(v.Value.Data)
		v.Value.Data = nil
		v.Value = nil
	}
}

// BackwardFrom runs backpropagation from a non-scalar v seeded with the
// gradient seed (v's size), like torch's v.backward(seed): the gradients
// are those of Σ v·seed.
func (v *Var) BackwardFrom(seed *tensor.Tensor) { v.backwardFrom(seed, false) }

func (v *Var) backwardFrom(seed *tensor.Tensor, release bool) {
	if seed.Size() != v.Value.Size() {
		panic(fmt.Sprintf("nn: BackwardFrom seed of shape %v for a Var of shape %v", seed.Shape, v.Value.Shape))
	}
	if !v.requiresGrad {
		return
	}
	order := topoSort(v)
	if g, fresh := v.gradFresh(); fresh {
		copy(g, seed.Data)
	} else {
		for i, s := range seed.Data {
			g[i] += s
		}
	}
	for i := len(order) - 1; i >= 0; i-- {
		n := order[i]
		if n.backward != nil && (n.Grad != nil || n.lazy != nil) {
			n.backward()
		}
		if n.lazy != nil {
			n.lazy.free()
			n.lazy = nil
		}
		if n.parents != nil {
			// Intermediate node: recycle its gradient, drop the graph edges.
			if n.Grad != nil {
				putBuf(n.Grad.Data)
			}
			n.Grad = nil
			n.parents = nil
			n.backward = nil
			if release && n != v && n.Value != nil && !overlaps(n.Value.Data, v.Value.Data) {
				n.releaseValue()
			}
		}
	}
}

// overlaps reports whether two slices share memory.
func overlaps(a, b []float32) bool {
	if len(a) == 0 || len(b) == 0 {
		return false
	}
	a0, b0 := uintptr(unsafe.Pointer(&a[0])), uintptr(unsafe.Pointer(&b[0]))
	return a0 < b0+4*uintptr(len(b)) && b0 < a0+4*uintptr(len(a))
}

// topoSort returns the nodes reachable from root that require a gradient,
// parents before children, iteratively (graphs can be deep).
func topoSort(root *Var) []*Var {
	var order []*Var
	visited := map[*Var]bool{root: true}
	type frame struct {
		v *Var
		i int
	}
	stack := []frame{{root, 0}}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.i < len(top.v.parents) {
			p := top.v.parents[top.i]
			top.i++
			if p != nil && p.requiresGrad && !visited[p] {
				visited[p] = true
				stack = append(stack, frame{p, 0})
			}
			continue
		}
		order = append(order, top.v)
		stack = stack[:len(stack)-1]
	}
	return order
}
