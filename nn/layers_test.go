package nn

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
)

// TestConvBNFolded checks the folded inference path of ConvBN against the
// plain composition, for one-image and multi-image GEMM groups.
func TestConvBNFolded(t *testing.T) {
	r := rand.New(rand.NewPCG(8, 8))
	for _, size := range []int{4, 20} { // P = 16 (grouped) and 100 or 400 (grouped / single)
		for _, bias := range []bool{false, true} {
			for _, relu := range []bool{false, true} {
				t.Run(fmt.Sprint(size, bias, relu), func(t *testing.T) {
					conv := NewConv2d(3, 5, 3, 1, 1, bias, r)
					bn := NewBatchNorm2d(5)
					Normal(bn.Gamma.Value, 1, 0.5, r)
					Normal(bn.Beta.Value, 0, 0.5, r)
					Normal(bn.RunningMean, 0, 0.5, r)
					Uniform(bn.RunningVar, 0.5, 2, r)
					x := Const(randT(r, 3, 3, size, size))
					var got, want *Var
					NoGrad(func() { got = ConvBN(x, conv, bn, false, relu) })
					if relu {
						want = bn.ForwardReLU(conv.Forward(x), false)
					} else {
						want = bn.Forward(conv.Forward(x), false)
					}
					for i, w := range want.Value.Data {
						if d := math.Abs(float64(got.Value.Data[i] - w)); d > 1e-5*(1+math.Abs(float64(w))) {
							t.Fatalf("element %d: folded %g, composed %g", i, got.Value.Data[i], w)
						}
					}
				})
			}
		}
	}
}
