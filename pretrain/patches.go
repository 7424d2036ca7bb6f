package pretrain

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/section"
)

// PatchPool is the image pretraining data gathered from several sections:
// one patch per spot (that has one) plus optional extra tissue tiles.
type PatchPool struct {
	Size int
	Pix  [][]uint8
	// Section and Spot name where patch i comes from: the section index into
	// the sections passed to CollectPatches and the spot index in it (-1 for
	// a tile between spots).
	Section []int
	Spot    []int
}

// IsTile reports whether patch i is an extra tile rather than a spot patch.
func (p *PatchPool) IsTile(i int) bool { return p.Spot[i] < 0 }

// CollectPatches extracts the spot patches of every section that has an
// image (sections without one are skipped with a log line) and, with
// tilesPerSection > 0, up to that many extra tissue tiles per section drawn
// with a generator seeded by seed.
func CollectPatches(ctx context.Context, secs []*section.Section, opt patch.Options, tilesPerSection int, seed uint64) (*PatchPool, error) {
	pool := &PatchPool{Size: opt.Size}
	if pool.Size <= 0 {
		pool.Size = 64
		opt.Size = 64
	}
	rng := rand.New(rand.NewPCG(seed, 0x711e5))
	for si, sec := range secs {
		if sec.Image == nil {
			slog.Info("pretrain: section has no image; skipped for image pretraining", "section", sec.Name)
			continue
		}
		set, err := patch.Extract(ctx, sec, opt)
		if err != nil {
			return nil, err
		}
		for i, p := range set.Pix {
			if p != nil {
				pool.Pix = append(pool.Pix, p)
				pool.Section = append(pool.Section, si)
				pool.Spot = append(pool.Spot, i)
			}
		}
		if tilesPerSection > 0 {
			tiles, err := patch.Tiles(ctx, sec, opt, tilesPerSection, rng)
			if err != nil {
				return nil, err
			}
			for _, p := range tiles.Pix {
				if p != nil {
					pool.Pix = append(pool.Pix, p)
					pool.Section = append(pool.Section, si)
					pool.Spot = append(pool.Spot, -1)
				}
			}
		}
	}
	if len(pool.Pix) == 0 {
		return nil, fmt.Errorf("pretrain: none of the %d sections has an image with patches", len(secs))
	}
	return pool, nil
}

// SplitHeld returns the indices of the training and held-out patches of
// the pool: a fraction frac of the spot patches, drawn with a generator
// seeded by seed, is held out; tiles always train.
func (p *PatchPool) SplitHeld(frac float64, seed uint64) (train, held []int) {
	var spots []int
	for i := range p.Pix {
		if p.IsTile(i) {
			train = append(train, i)
		} else {
			spots = append(spots, i)
		}
	}
	rng := rand.New(rand.NewPCG(seed, 0x4e1d))
	rng.Shuffle(len(spots), func(i, j int) { spots[i], spots[j] = spots[j], spots[i] })
	nh := int(frac*float64(len(spots)) + 0.5)
	held = append(held, spots[:nh]...)
	train = append(train, spots[nh:]...)
	slices.Sort(train)
	slices.Sort(held)
	return train, held
}

// Select returns the patches at idx.
func (p *PatchPool) Select(idx []int) [][]uint8 {
	out := make([][]uint8, len(idx))
	for i, j := range idx {
		out[i] = p.Pix[j]
	}
	return out
}
