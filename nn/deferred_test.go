package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/spotfuse/spotfuse/tensor"
)

// TestConvBNChainSameBits checks that ConvBNChain, whose BatchNorm outputs
// between blocks are not stored but recomputed (forward) or mapped as they
// are gathered (weight gradients) by the next convolution, gives the bits
// of the stored path: the output, the loss, every parameter's gradient, the
// input's gradient and the running statistics. The chains cover a
// consumer on the panel path (rows of 32 pixels), on the gathering path
// (rows of 16 and 8, images grouped), a first layer's DotNT weight
// gradient, a small map convolved tap by tap (whose input is stored), a
// bias, BatchNorm with and without ReLU, and one and two threads.
func TestConvBNChainSameBits(t *testing.T) {
	type block struct{ in, out, k, stride int }
	chains := []struct {
		name string
		n, h int
		bs   []block
		bias bool
	}{
		{"conv4-like", 4, 64, []block{{3, 8, 3, 1}, {8, 16, 3, 2}, {16, 24, 3, 2}, {24, 32, 3, 2}}, false},
		{"panel consumer", 3, 32, []block{{4, 8, 3, 1}, {8, 12, 3, 1}, {12, 8, 1, 1}}, true},
		{"small maps", 4, 16, []block{{3, 40, 3, 2}, {40, 16, 3, 2}, {16, 8, 3, 1}}, false},
	}
	defer func(v bool) { useUnstored = v }(useUnstored)
	defer tensor.SetThreads(tensor.Threads())
	for ci, c := range chains {
		for _, relu := range []bool{true, false} {
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/relu=%v/threads=%d", c.name, relu, threads), func(t *testing.T) {
					tensor.SetThreads(threads)
					type result struct{ out, grads [][]float32 }
					var res [2]result
					for k, unstored := range []bool{false, true} {
						useUnstored = unstored
						r := rand.New(rand.NewPCG(uint64(ci), 11))
						var convs []*Conv2dLayer
						var bns []*BatchNormLayer
						var params []*Var
						for _, b := range c.bs {
							conv := NewConv2d(b.in, b.out, b.k, b.stride, b.k/2, c.bias, r)
							bn := NewBatchNorm(b.out)
							bn.Gamma.Value = randT(r, b.out)
							bn.Beta.Value = randT(r, b.out)
							convs, bns = append(convs, conv), append(bns, bn)
							params = append(params, conv.W, bn.Gamma, bn.Beta)
							if c.bias {
								params = append(params, conv.B)
							}
						}
						x := Param(randT(r, c.n, c.bs[0].in, c.h, c.h))
						y := ConvBNChain(x, convs, bns, true, relu)
						w := Const(randT(r, y.Value.Shape...))
						loss := Sum(Mul(y, w))
						loss.Backward()
						res[k].out = [][]float32{y.Value.Data, loss.Value.Data}
						for _, bn := range bns {
							res[k].out = append(res[k].out, bn.RunningMean.Data, bn.RunningVar.Data)
						}
						for _, p := range append(params, x) {
							res[k].grads = append(res[k].grads, p.Grad.Data)
						}
					}
					same := func(what string, a, b [][]float32) {
						for i := range a {
							for j := range a[i] {
								if math.Float32bits(a[i][j]) != math.Float32bits(b[i][j]) {
									t.Fatalf("%s %d [%d]: %v unstored, %v stored", what, i, j, b[i][j], a[i][j])
								}
							}
						}
					}
					same("value", res[0].out, res[1].out)
					same("gradient", res[0].grads, res[1].grads)
				})
			}
		}
	}
}
