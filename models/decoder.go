package models

import (
	"fmt"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/tensor"
)

// PixelDecoder maps an encoder feature map [N,C,h,w] back to an image
// [N,Out,h·2^U,w·2^U]: U blocks of nearest 2× upsampling + 3×3 conv (no
// bias) + BatchNorm + ReLU, halving the channels each time from C/4 (at
// least 8), then a 3×3 conv with bias to Out channels and no activation (the
// targets are normalised pixels). It is the head of the inpainting and
// colorization pretext tasks.
type PixelDecoder struct {
	blocks []*convBN
	outW   *nn.Var
	outB   *nn.Var
}

// NewPixelDecoder builds a decoder for inChannels feature maps upsampled
// upsamples times to outChannels.
func NewPixelDecoder(inChannels, upsamples, outChannels int, rng *rand.Rand) *PixelDecoder {
	d := &PixelDecoder{}
	in := inChannels
	for i := 0; i < upsamples; i++ {
		out := max(inChannels/4>>i, 8)
		d.blocks = append(d.blocks, newConvBN(in, out, 3, 1, rng))
		in = out
	}
	w := tensor.New(outChannels, in, 3, 3)
	torchUniform(w, in*9, rng)
	b := tensor.New(outChannels)
	torchUniform(b, in*9, rng)
	d.outW, d.outB = nn.Param(w), nn.Param(b)
	return d
}

// Forward decodes the feature map fm.
func (d *PixelDecoder) Forward(fm *nn.Var, train bool) *nn.Var {
	x := fm
	for _, b := range d.blocks {
		x = b.forwardReLU(nn.Upsample2x(x), train)
	}
	return nn.Conv2d(x, d.outW, d.outB, 1, 1)
}

// NamedParams returns the trainable parameters by stable name.
func (d *PixelDecoder) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{"out.weight": d.outW, "out.bias": d.outB}
	for i, b := range d.blocks {
		b.params(m, fmt.Sprintf("up%d.", i+1))
	}
	return m
}

// Buffers returns the BatchNorm running statistics by stable name.
func (d *PixelDecoder) Buffers() map[string]*tensor.Tensor {
	m := map[string]*tensor.Tensor{}
	for i, b := range d.blocks {
		b.buffers(m, fmt.Sprintf("up%d.", i+1))
	}
	return m
}

// ProjectionHead is the SimCLR projection MLP: Linear(D→Hidden) + ReLU +
// Linear(Hidden→Out). The contrastive loss is computed on its output; the
// embedding used downstream is the encoder's output before it.
type ProjectionHead struct {
	w1, b1, w2, b2 *nn.Var
}

// NewProjectionHead builds a head with PyTorch's default Linear init.
func NewProjectionHead(in, hidden, out int, rng *rand.Rand) *ProjectionHead {
	lin := func(o, i int) (*nn.Var, *nn.Var) {
		w, b := tensor.New(o, i), tensor.New(o)
		torchUniform(w, i, rng)
		torchUniform(b, i, rng)
		return nn.Param(w), nn.Param(b)
	}
	h := &ProjectionHead{}
	h.w1, h.b1 = lin(hidden, in)
	h.w2, h.b2 = lin(out, hidden)
	return h
}

// Forward projects embeddings [N,D] to [N,Out].
func (h *ProjectionHead) Forward(x *nn.Var) *nn.Var {
	return nn.Linear(nn.ReLU(nn.Linear(x, h.w1, h.b1)), h.w2, h.b2)
}

// NamedParams returns the trainable parameters by stable name.
func (h *ProjectionHead) NamedParams() map[string]*nn.Var {
	return map[string]*nn.Var{"fc1.weight": h.w1, "fc1.bias": h.b1, "fc2.weight": h.w2, "fc2.bias": h.b2}
}
