package pretrain

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/spotfuse/spotfuse/models"
	"github.com/spotfuse/spotfuse/nn"
	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/progress"
	"github.com/spotfuse/spotfuse/tensor"
)

// Image pretext task names (keys of ImageConfig.Tasks).
const (
	TaskInpaint     = "inpaint"
	TaskColorize    = "colorize"
	TaskContrastive = "contrastive"
)

// ImageTasks lists the image pretext tasks in the order they are computed.
var ImageTasks = []string{TaskInpaint, TaskColorize, TaskContrastive}

// ImageConfig configures image pretraining.
type ImageConfig struct {
	Encoder models.ImageEncoderConfig
	// Tasks maps a pretext task ("inpaint", "colorize", "contrastive") to
	// its weight in the combined loss; absent or 0 = off. All enabled tasks
	// share the encoder and are optimised together.
	Tasks map[string]float64
	Loop  LoopConfig

	// MaskBlocks is the largest number of square blocks hidden per patch
	// for inpainting (each patch hides 1..MaskBlocks, default 3) and
	// MaskFrac their side as a fraction of the patch side (default 0.25).
	// Hidden pixels are filled with the patch's mean colour.
	MaskBlocks int
	MaskFrac   float64
	// Temperature of the NT-Xent (InfoNCE) loss (default 0.2) and ProjDim
	// the output width of the projection head (default 128; its hidden
	// width is D).
	Temperature float64
	ProjDim     int
	// Augment holds the contrastive view augmentations (default
	// patch.DefaultAugment(): flips, 90° rotations, HED stain jitter,
	// brightness/contrast, blur, random resized crop).
	Augment *patch.Augment
	// HeldOutMax caps the held-out patches evaluated (default 512; they are
	// taken evenly spread over held).
	HeldOutMax int
}

// DefaultImageConfig returns the documented defaults: a conv4 encoder of
// Width 32 whose embedding concatenates the average pools of all four
// blocks (Pool "stages", D = 480; normalisation statistics left for
// TrainImage to take from the data), the three pretext tasks with weight 1
// each and DefaultLoop. For 64-pixel patches this costs about 0.2 s of
// CPU per patch and step; the demo uses 32-pixel patches and Width 16 (see
// cmd/spotfuse pretrain probe). Cut the patches with twice the spot
// diameter (patch.Options.Context = 2): on the HER2ST A1 linear probe (10 %
// labels, 5 seeds) that lifts the contrastive and combined encoders clearly
// above the colour/texture statistics, which no pretext task beats at
// Context 1.
func DefaultImageConfig() ImageConfig {
	return ImageConfig{
		Encoder:    models.ImageEncoderConfig{Arch: "conv4", Width: 32, Depth: 4, Pool: models.PoolStages},
		Tasks:      map[string]float64{TaskInpaint: 1, TaskColorize: 1, TaskContrastive: 1},
		Loop:       DefaultLoop(),
		MaskBlocks: 3, MaskFrac: 0.25, Temperature: 0.2, ProjDim: 128, HeldOutMax: 512,
	}
}

func (c ImageConfig) withDefaults() ImageConfig {
	c.Encoder = c.Encoder.WithDefaults()
	c.Loop = c.Loop.withDefaults()
	if c.MaskBlocks == 0 {
		c.MaskBlocks = 3
	}
	if c.MaskFrac == 0 {
		c.MaskFrac = 0.25
	}
	if c.Temperature == 0 {
		c.Temperature = 0.2
	}
	if c.ProjDim == 0 {
		c.ProjDim = 128
	}
	if c.Augment == nil {
		a := patch.DefaultAugment()
		c.Augment = &a
	}
	if c.HeldOutMax == 0 {
		c.HeldOutMax = 512
	}
	return c
}

func (c ImageConfig) validate(size int) error {
	if err := c.Encoder.Validate(); err != nil {
		return err
	}
	if err := c.Loop.validate(); err != nil {
		return err
	}
	on := 0
	for k, w := range c.Tasks {
		if !slices.Contains(ImageTasks, k) {
			return fmt.Errorf("pretrain: unknown image task %q (want %v)", k, ImageTasks)
		}
		if w < 0 || math.IsNaN(w) || math.IsInf(w, 0) {
			return fmt.Errorf("pretrain: image task %q has weight %g, want ≥ 0", k, w)
		}
		if w > 0 {
			on++
		}
	}
	if on == 0 {
		return fmt.Errorf("pretrain: no image task enabled (set a positive weight for one of %v)", ImageTasks)
	}
	f := c.Encoder.Downsample()
	if size < 8 || size%f != 0 {
		return fmt.Errorf("pretrain: patch size %d must be ≥ 8 and a multiple of %d (the encoder's downsampling at depth %d)",
			size, f, c.Encoder.Depth)
	}
	if c.MaskBlocks < 1 || !(c.MaskFrac > 0 && c.MaskFrac <= 1) {
		return fmt.Errorf("pretrain: MaskBlocks = %d, MaskFrac = %g: want ≥ 1 and a fraction in (0, 1]", c.MaskBlocks, c.MaskFrac)
	}
	if !(c.Temperature > 0) || c.ProjDim < 1 {
		return fmt.Errorf("pretrain: Temperature = %g, ProjDim = %d: want > 0 and ≥ 1", c.Temperature, c.ProjDim)
	}
	if c.Tasks[TaskContrastive] > 0 && c.Loop.Batch < 2 {
		return fmt.Errorf("pretrain: contrastive learning needs Batch ≥ 2 (got %d)", c.Loop.Batch)
	}
	return nil
}

// TrainImage pretrains an image encoder on patches (HWC RGB uint8 of side
// size) with the enabled pretext tasks and returns it with the loss history.
// held (may be nil) are patches kept out of training on which the held-out
// loss of every task is measured before training, every cfg.Loop.LogEvery
// steps and at the end. Unset normalisation statistics of cfg.Encoder are
// computed from patches. After training the BatchNorm running statistics
// are re-estimated on clean training patches (the pretext inputs — masked,
// grey, augmented — have other statistics than the patches Embed sees).
// Same inputs and seed ⇒ bit-identical encoder.
func TrainImage(ctx context.Context, patches [][]uint8, size int, held [][]uint8, cfg ImageConfig, prog progress.Reporter) (*models.ImageEncoder, *History, error) {
	if cfg.Encoder.Std == ([3]float32{}) && len(patches) > 0 {
		cfg.Encoder.Mean, cfg.Encoder.Std = models.ChannelStats(patches)
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(size); err != nil {
		return nil, nil, err
	}
	if err := checkPatches("training", patches, size); err != nil {
		return nil, nil, err
	}
	if err := checkPatches("held-out", held, size); err != nil {
		return nil, nil, err
	}
	if len(patches) < 2 {
		return nil, nil, fmt.Errorf("pretrain: %d training patches, need at least 2", len(patches))
	}
	t := newImageTask(cfg, patches, size, held)
	hist, err := Run(ctx, t, cfg.Loop, prog)
	if err != nil {
		return nil, hist, err
	}
	RecalibrateBN(t.enc, patches, size, cfg.Loop.Batch)
	return t.enc, hist, nil
}

func checkPatches(what string, patches [][]uint8, size int) error {
	for i, p := range patches {
		if len(p) != 3*size*size {
			return fmt.Errorf("pretrain: %s patch %d has %d bytes, want %d (%d×%d RGB)", what, i, len(p), 3*size*size, size, size)
		}
	}
	return nil
}

// RecalibrateBN re-estimates the BatchNorm running statistics of enc as the
// average batch statistics over patches (at most 64 batches of batch
// patches spread evenly over the list; batch b takes every nb-th patch from
// the b-th, so that batches mix sections), leaving the weights unchanged.
func RecalibrateBN(enc *models.ImageEncoder, patches [][]uint8, size, batch int) {
	sel := spread(patches, 64*batch)
	nb := len(sel) / batch
	if nb == 0 {
		if len(sel) < 2 {
			return
		}
		nb = 1
	}
	bufs := enc.Buffers()
	acc := map[string][]float64{}
	for k, b := range bufs {
		acc[k] = make([]float64, len(b.Data))
	}
	nn.NoGrad(func() {
		for b := 0; b < nb; b++ {
			var group [][]uint8
			for i := b; i < len(sel); i += nb {
				group = append(group, sel[i])
			}
			// A forward pass in training mode moves each buffer by
			// momentum·(batch value − buffer); from a zero buffer that is
			// momentum·batch value, which is divided out below.
			for _, t := range bufs {
				t.Zero()
			}
			enc.Forward(nn.Const(enc.Input(group, size)), true)
			for k, t := range bufs {
				for i, v := range t.Data {
					acc[k][i] += float64(v) / models.BNMomentum
				}
			}
		}
	})
	for k, t := range bufs {
		for i := range t.Data {
			t.Data[i] = float32(acc[k][i] / float64(nb))
		}
	}
}

// imageTask computes the combined image pretext loss.
type imageTask struct {
	cfg     ImageConfig
	size    int
	patches [][]uint8
	held    [][]uint8

	enc      *models.ImageEncoder
	inpaint  *models.PixelDecoder
	colorize *models.PixelDecoder
	proj     *models.ProjectionHead
}

func newImageTask(cfg ImageConfig, patches [][]uint8, size int, held [][]uint8) *imageTask {
	rng := rand.New(rand.NewPCG(cfg.Loop.Seed, 0x1a6e_5eed))
	t := &imageTask{cfg: cfg, size: size, patches: patches, held: spread(held, cfg.HeldOutMax)}
	t.enc = models.NewImageEncoder(cfg.Encoder, rng)
	d, ups := t.enc.FeatureDim(), cfg.Encoder.Depth-1
	if cfg.Tasks[TaskInpaint] > 0 {
		t.inpaint = models.NewPixelDecoder(d, ups, 3, rng)
	}
	if cfg.Tasks[TaskColorize] > 0 {
		t.colorize = models.NewPixelDecoder(d, ups, 3, rng)
	}
	if cfg.Tasks[TaskContrastive] > 0 {
		t.proj = models.NewProjectionHead(d, d, cfg.ProjDim, rng)
	}
	return t
}

// spread returns at most n elements of s, evenly spaced.
func spread(s [][]uint8, n int) [][]uint8 {
	if len(s) <= n {
		return s
	}
	out := make([][]uint8, n)
	for i := range out {
		out[i] = s[i*len(s)/n]
	}
	return out
}

func (t *imageTask) NamedParams() map[string]*nn.Var {
	m := map[string]*nn.Var{}
	nn.AddPrefixed(m, "encoder", t.enc.NamedParams())
	if t.inpaint != nil {
		nn.AddPrefixed(m, "inpaint", t.inpaint.NamedParams())
	}
	if t.colorize != nil {
		nn.AddPrefixed(m, "colorize", t.colorize.NamedParams())
	}
	if t.proj != nil {
		nn.AddPrefixed(m, "proj", t.proj.NamedParams())
	}
	return m
}

func (t *imageTask) Buffers() map[string]*tensor.Tensor {
	m := map[string]*tensor.Tensor{}
	nn.AddPrefixed(m, "encoder", t.enc.Buffers())
	if t.inpaint != nil {
		nn.AddPrefixed(m, "inpaint", t.inpaint.Buffers())
	}
	if t.colorize != nil {
		nn.AddPrefixed(m, "colorize", t.colorize.Buffers())
	}
	return m
}

// Fingerprint identifies the task settings and data for checkpoints.
func (t *imageTask) Fingerprint() string {
	c := t.cfg
	c.Loop = LoopConfig{}
	h := fnv.New64a()
	for _, set := range [][][]uint8{t.patches, t.held} {
		fmt.Fprintf(h, "%d;", len(set))
		for _, p := range set {
			h.Write(p)
		}
	}
	b, _ := json.Marshal(c)
	return fmt.Sprintf("%s;size=%d;data=%x", b, t.size, h.Sum64())
}

// Step draws a batch (without replacement) and returns the weighted sum of
// the enabled task losses.
func (t *imageTask) Step(ctx context.Context, step int, rng *rand.Rand) (*nn.Var, map[string]float64, error) {
	b := min(t.cfg.Loop.Batch, len(t.patches))
	idx := sample(len(t.patches), b, rng)
	batch := make([][]uint8, b)
	for i, j := range idx {
		batch[i] = t.patches[j]
	}
	return t.losses(batch, rng, true)
}

// sample draws k distinct indices of [0, n) (partial Fisher–Yates).
func sample(n, k int, rng *rand.Rand) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	for i := 0; i < k; i++ {
		j := i + rng.IntN(n-i)
		p[i], p[j] = p[j], p[i]
	}
	return p[:k]
}

// losses computes every enabled task's loss on batch; train selects
// BatchNorm batch statistics. Random choices come from rng in a fixed order
// (inpainting masks, then contrastive views).
func (t *imageTask) losses(batch [][]uint8, rng *rand.Rand, train bool) (*nn.Var, map[string]float64, error) {
	raw := models.PatchTensor(batch, t.size) // [0,1]
	target := raw.Clone()
	t.enc.Normalize(target)
	terms := map[string]float64{}
	var total *nn.Var
	add := func(name string, l *nn.Var) {
		terms[name] = float64(l.Value.Data[0])
		w := float32(t.cfg.Tasks[name])
		l = nn.Scale(l, w)
		if total == nil {
			total = l
		} else {
			total = nn.Add(total, l)
		}
	}
	if t.inpaint != nil {
		x, mask := maskBlocks(raw, t.cfg.MaskBlocks, t.cfg.MaskFrac, rng)
		t.enc.Normalize(x)
		pred := t.inpaint.Forward(t.enc.FeatureMap(nn.Const(x), train), train)
		add(TaskInpaint, nn.MaskedMSE(pred, nn.Const(target), mask))
	}
	if t.colorize != nil {
		x := grey(raw)
		t.enc.Normalize(x)
		pred := t.colorize.Forward(t.enc.FeatureMap(nn.Const(x), train), train)
		add(TaskColorize, nn.MSE(pred, nn.Const(target)))
	}
	if t.proj != nil {
		n := len(batch)
		plane := 3 * t.size * t.size
		views := tensor.New(2*n, 3, t.size, t.size)
		tmp := make([]float32, plane)
		for i := 0; i < n; i++ {
			src := raw.Data[i*plane : (i+1)*plane]
			for _, v := range []int{i, n + i} {
				view := views.Data[v*plane : (v+1)*plane]
				copy(view, src)
				t.cfg.Augment.Apply(view, t.size, rng, tmp)
			}
		}
		t.enc.Normalize(views)
		z := t.proj.Forward(t.enc.Forward(nn.Const(views), train))
		add(TaskContrastive, NTXent(z, float32(t.cfg.Temperature)))
	}
	return total, terms, nil
}

// HeldOut returns the mean loss of every enabled task on the held-out
// patches, in eval mode, with masks and views from a fixed seed, in batches
// of Loop.Batch (the contrastive loss depends on the batch size).
func (t *imageTask) HeldOut(ctx context.Context) (map[string]float64, error) {
	if len(t.held) == 0 {
		return nil, nil
	}
	rng := rand.New(rand.NewPCG(0x4e1d, 0x0ff))
	sum := map[string]float64{}
	n := 0.0
	var err error
	nn.NoGrad(func() {
		b := max(2, t.cfg.Loop.Batch)
		for lo := 0; lo < len(t.held); lo += b {
			if err = ctx.Err(); err != nil {
				return
			}
			hi := min(lo+b, len(t.held))
			if hi-lo < 2 {
				break
			}
			total, terms, _ := t.losses(t.held[lo:hi], rng, false)
			w := float64(hi - lo)
			for k, v := range terms {
				sum[k] += w * v
			}
			sum["total"] += w * float64(total.Value.Data[0])
			n += w
		}
	})
	if err != nil {
		return nil, err
	}
	for k := range sum {
		sum[k] /= n
	}
	return sum, nil
}

// maskBlocks returns a copy of x [N,3,S,S] (values in [0,1]) in which each
// patch hides 1..maxBlocks square blocks of side frac·S at random positions
// (filled with the patch's mean colour), and the mask marking the hidden
// elements (1) over all three channels.
func maskBlocks(x *tensor.Tensor, maxBlocks int, frac float64, rng *rand.Rand) (*tensor.Tensor, []float32) {
	n, s := x.Shape[0], x.Shape[2]
	hw := s * s
	out := x.Clone()
	mask := make([]float32, len(x.Data))
	side := max(1, int(math.Round(frac*float64(s))))
	for i := 0; i < n; i++ {
		img := out.Data[i*3*hw : (i+1)*3*hw]
		var mean [3]float32
		for c := 0; c < 3; c++ {
			var sum float64
			for _, v := range img[c*hw : (c+1)*hw] {
				sum += float64(v)
			}
			mean[c] = float32(sum / float64(hw))
		}
		m := mask[i*3*hw : (i+1)*3*hw]
		k := 1 + rng.IntN(maxBlocks)
		for b := 0; b < k; b++ {
			y0, x0 := rng.IntN(s-side+1), rng.IntN(s-side+1)
			for y := y0; y < y0+side; y++ {
				for xx := x0; xx < x0+side; xx++ {
					for c := 0; c < 3; c++ {
						img[c*hw+y*s+xx] = mean[c]
						m[c*hw+y*s+xx] = 1
					}
				}
			}
		}
	}
	return out, mask
}

// grey returns x [N,3,H,W] (RGB in [0,1]) with each pixel replaced by its
// luminance (patch.Grey, ITU-R BT.601) in all three channels, so the
// colorization input goes through the same 3-channel stem as the others.
func grey(x *tensor.Tensor) *tensor.Tensor {
	n, s := x.Shape[0], x.Shape[2]
	hw := s * s
	out := tensor.New(x.Shape...)
	for i := 0; i < n; i++ {
		dst := out.Data[i*3*hw : (i+1)*3*hw]
		patch.Grey(x.Data[i*3*hw:(i+1)*3*hw], s, dst[:hw])
		copy(dst[hw:2*hw], dst[:hw])
		copy(dst[2*hw:], dst[:hw])
	}
	return out
}

// NTXent is SimCLR's normalised-temperature cross-entropy over z [2N,D],
// whose rows i and N+i are the two views of example i: rows are
// L2-normalised, each row's logits are its cosine similarities to the other
// 2N-1 rows divided by temperature, and the loss is the mean cross-entropy
// of picking its partner view (2N-2 negatives per row).
func NTXent(z *nn.Var, temperature float32) *nn.Var {
	m := z.Value.Shape[0]
	if m%2 != 0 || m < 4 {
		panic(fmt.Sprintf("pretrain: NTXent of %d rows, want an even number ≥ 4", m))
	}
	n := m / 2
	zn := nn.L2Normalize(z)
	logits := nn.Scale(nn.MatMul(zn, nn.Transpose2D(zn)), 1/temperature)
	self := tensor.New(m, m)
	for i := 0; i < m; i++ {
		self.Data[i*m+i] = -1e4 // exp(-1e4) = 0: a row is never its own negative
	}
	targets := make([]int, m)
	for i := range targets {
		targets[i] = (i + n) % m
	}
	return nn.CrossEntropy(nn.Add(logits, nn.Const(self)), targets, nil)
}
