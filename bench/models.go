// Package bench measures spotfuse's engine (packages tensor and nn) on
// reference image encoders and compares it with PyTorch running the same
// architecture, batch, image size and thread count (torch_peer.py, run as a
// subprocess).
package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/spotfuse/spotfuse/nn"
)

// Model is an image classifier under benchmark.
type Model interface {
	nn.Module
	nn.Buffered
	// Forward maps images [N,3,H,W] to logits [N,classes].
	Forward(x *nn.Var, train bool) *nn.Var
	// ConvFLOPs returns the multiply-add FLOPs (2 per MAC) of the forward
	// convolutions for one image of size×size.
	ConvFLOPs(size int) float64
}

// NewModel returns the named reference model: "conv4" or "resnet18".
func NewModel(name string, classes int, rng *rand.Rand) (Model, error) {
	switch name {
	case "conv4":
		return NewConv4(classes, rng), nil
	case "resnet18":
		return NewResNet18(classes, rng), nil
	}
	return nil, fmt.Errorf("bench: unknown model %q (want conv4 or resnet18)", name)
}

// convBN is a bias-free convolution followed by BatchNorm (and ReLU).
type convBN struct {
	conv *nn.Conv2dLayer
	bn   *nn.BatchNormLayer
}

func newConvBN(in, out, k, stride int, rng *rand.Rand) convBN {
	return convBN{nn.NewConv2d(in, out, k, stride, k/2, false, rng), nn.NewBatchNorm2d(out)}
}

func (c convBN) forward(x *nn.Var, train, relu bool) *nn.Var {
	return nn.ConvBN(x, c.conv, c.bn, train, relu)
}

// flops of a convolution producing out channels on an oh×ow map.
func (c convBN) flops(h, w int) (float64, int, int) {
	s := c.conv.W.Value.Shape
	oh := (h+2*c.conv.Pad-s[2])/c.conv.Stride + 1
	ow := (w+2*c.conv.Pad-s[3])/c.conv.Stride + 1
	return 2 * float64(s[0]*s[1]*s[2]*s[3]) * float64(oh*ow), oh, ow
}

// Conv4 is the reference encoder: four 3×3 conv–BN–ReLU blocks
// 3→32 (stride 1), 32→64, 64→128, 128→256 (stride 2), global average
// pooling and a linear classifier.
type Conv4 struct {
	Blocks [4]convBN
	FC     *nn.LinearLayer
}

// NewConv4 initialises Conv4 like torch's defaults.
func NewConv4(classes int, rng *rand.Rand) *Conv4 {
	m := &Conv4{}
	chans := []int{3, 32, 64, 128, 256}
	for i := range m.Blocks {
		stride := 2
		if i == 0 {
			stride = 1
		}
		m.Blocks[i] = newConvBN(chans[i], chans[i+1], 3, stride, rng)
	}
	m.FC = nn.NewLinear(256, classes, true, rng)
	return m
}

// Forward maps x [N,3,H,W] to logits.
func (m *Conv4) Forward(x *nn.Var, train bool) *nn.Var {
	convs, bns := make([]*nn.Conv2dLayer, len(m.Blocks)), make([]*nn.BatchNormLayer, len(m.Blocks))
	for i, b := range m.Blocks {
		convs[i], bns[i] = b.conv, b.bn
	}
	return m.FC.Forward(nn.GlobalAvgPool(nn.ConvBNChain(x, convs, bns, train, true)))
}

// ConvFLOPs is the forward convolution FLOPs per image.
func (m *Conv4) ConvFLOPs(size int) float64 {
	var total float64
	h := size
	for _, b := range m.Blocks {
		f, oh, _ := b.flops(h, h)
		total += f
		h = oh
	}
	return total
}

// NamedParams names parameters like the torch peer's state_dict.
func (m *Conv4) NamedParams() map[string]*nn.Var {
	out := map[string]*nn.Var{}
	for i, b := range m.Blocks {
		nn.AddPrefixed(out, fmt.Sprintf("blocks.%d.conv", i), b.conv.NamedParams())
		nn.AddPrefixed(out, fmt.Sprintf("blocks.%d.bn", i), b.bn.NamedParams())
	}
	nn.AddPrefixed(out, "fc", m.FC.NamedParams())
	return out
}

// NamedBuffers returns the BatchNorm running statistics.
func (m *Conv4) NamedBuffers() map[string]*tensorT {
	out := map[string]*tensorT{}
	for i, b := range m.Blocks {
		nn.AddPrefixed(out, fmt.Sprintf("blocks.%d.bn", i), b.bn.NamedBuffers())
	}
	return out
}

// basicBlock is ResNet's two-convolution residual block.
type basicBlock struct {
	c1, c2 convBN
	down   *convBN // 1×1 projection when the shape changes
}

func (b *basicBlock) forward(x *nn.Var, train bool) *nn.Var {
	y := b.c2.forward(b.c1.forward(x, train, true), train, false)
	id := x
	if b.down != nil {
		id = b.down.forward(x, train, false)
	}
	return nn.ReLU(nn.Add(y, id))
}

// ResNet18 is torchvision's resnet18 (7×7 stem, max pool, four stages of
// two basic blocks, global average pool, linear classifier).
type ResNet18 struct {
	Stem   convBN
	Layers [4][2]*basicBlock
	FC     *nn.LinearLayer
}

// NewResNet18 initialises like torchvision (Kaiming-normal fan-out
// convolutions, BatchNorm γ=1 β=0, default Linear).
func NewResNet18(classes int, rng *rand.Rand) *ResNet18 {
	m := &ResNet18{Stem: newConvBN(3, 64, 7, 2, rng)}
	in := 64
	for s, width := range []int{64, 128, 256, 512} {
		for j := range 2 {
			stride := 1
			if j == 0 && s > 0 {
				stride = 2
			}
			b := &basicBlock{c1: newConvBN(in, width, 3, stride, rng), c2: newConvBN(width, width, 3, 1, rng)}
			if stride != 1 || in != width {
				d := newConvBN(in, width, 1, stride, rng)
				b.down = &d
			}
			m.Layers[s][j] = b
			in = width
		}
	}
	for _, p := range m.convs() {
		nn.KaimingNormal(p.conv.W.Value, true, rng)
	}
	m.FC = nn.NewLinear(512, classes, true, rng)
	return m
}

func (m *ResNet18) convs() []convBN {
	out := []convBN{m.Stem}
	for _, st := range m.Layers {
		for _, b := range st {
			out = append(out, b.c1, b.c2)
			if b.down != nil {
				out = append(out, *b.down)
			}
		}
	}
	return out
}

// Forward maps x [N,3,H,W] to logits.
func (m *ResNet18) Forward(x *nn.Var, train bool) *nn.Var {
	x = nn.MaxPool2dPad(m.Stem.forward(x, train, true), 3, 2, 1)
	for _, st := range m.Layers {
		for _, b := range st {
			x = b.forward(x, train)
		}
	}
	return m.FC.Forward(nn.GlobalAvgPool(x))
}

// ConvFLOPs is the forward convolution FLOPs per image.
func (m *ResNet18) ConvFLOPs(size int) float64 {
	f, h, _ := m.Stem.flops(size, size)
	h = (h+2-3)/2 + 1 // max pool
	total := f
	for _, st := range m.Layers {
		for _, b := range st {
			f1, h1, _ := b.c1.flops(h, h)
			f2, _, _ := b.c2.flops(h1, h1)
			total += f1 + f2
			if b.down != nil {
				fd, _, _ := b.down.flops(h, h)
				total += fd
			}
			h = h1
		}
	}
	return total
}

// NamedParams names parameters like torchvision's resnet18 state_dict.
func (m *ResNet18) NamedParams() map[string]*nn.Var {
	out := map[string]*nn.Var{}
	m.walk(func(prefix string, c convBN) {
		nn.AddPrefixed(out, prefix+"conv", c.conv.NamedParams())
		nn.AddPrefixed(out, prefix+"bn", c.bn.NamedParams())
	})
	nn.AddPrefixed(out, "fc", m.FC.NamedParams())
	return out
}

// NamedBuffers returns the BatchNorm running statistics.
func (m *ResNet18) NamedBuffers() map[string]*tensorT {
	out := map[string]*tensorT{}
	m.walk(func(prefix string, c convBN) {
		nn.AddPrefixed(out, prefix+"bn", c.bn.NamedBuffers())
	})
	return out
}

func (m *ResNet18) walk(fn func(prefix string, c convBN)) {
	fn("stem.", m.Stem)
	for s, st := range m.Layers {
		for j, b := range st {
			p := fmt.Sprintf("layer%d.%d.", s+1, j)
			fn(p+"1.", b.c1)
			fn(p+"2.", b.c2)
			if b.down != nil {
				fn(p+"downsample.", *b.down)
			}
		}
	}
}
