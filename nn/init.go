package nn

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/tensor"
)

// fans returns torch's fan_in and fan_out of a weight tensor: [out, in, k...].
func fans(t *tensor.Tensor) (fanIn, fanOut int) {
	s := t.Shape
	if len(s) < 2 {
		panic(fmt.Sprintf("nn: fan of a tensor of shape %v", s))
	}
	rf := 1
	for _, d := range s[2:] {
		rf *= d
	}
	return s[1] * rf, s[0] * rf
}

// Uniform fills t with values drawn uniformly from [lo, hi).
func Uniform(t *tensor.Tensor, lo, hi float64, rng *rand.Rand) {
	for i := range t.Data {
		t.Data[i] = float32(lo + (hi-lo)*rng.Float64())
	}
}

// Normal fills t with values drawn from N(mean, std²).
func Normal(t *tensor.Tensor, mean, std float64, rng *rand.Rand) {
	for i := range t.Data {
		t.Data[i] = float32(mean + std*rng.NormFloat64())
	}
}

// KaimingUniform fills the weight t like torch.nn.init.kaiming_uniform_
// (mode fan_in, leaky_relu with negative slope a): U(−b, b) with
// b = sqrt(2/(1+a²))·sqrt(3/fan_in). With a = √5 this is torch's default
// initialisation of Linear and Conv2d weights (b = 1/sqrt(fan_in)).
func KaimingUniform(t *tensor.Tensor, a float64, rng *rand.Rand) {
	fanIn, _ := fans(t)
	b := math.Sqrt(2/(1+a*a)) * math.Sqrt(3/float64(fanIn))
	Uniform(t, -b, b, rng)
}

// KaimingNormal fills t like torch.nn.init.kaiming_normal_ for ReLU:
// N(0, 2/fan) with fan = fan_out if fanOut else fan_in (torchvision's ResNet
// uses fan_out).
func KaimingNormal(t *tensor.Tensor, fanOut bool, rng *rand.Rand) {
	fi, fo := fans(t)
	fan := fi
	if fanOut {
		fan = fo
	}
	Normal(t, 0, math.Sqrt(2/float64(fan)), rng)
}

// XavierUniform fills t like torch.nn.init.xavier_uniform_:
// U(−b, b) with b = gain·sqrt(6/(fan_in+fan_out)).
func XavierUniform(t *tensor.Tensor, gain float64, rng *rand.Rand) {
	fi, fo := fans(t)
	b := gain * math.Sqrt(6/float64(fi+fo))
	Uniform(t, -b, b, rng)
}
