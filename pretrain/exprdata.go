package pretrain

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strings"

	"github.com/spotfuse/spotfuse/patch"
	"github.com/spotfuse/spotfuse/preprocess"
	"github.com/spotfuse/spotfuse/section"
	"github.com/spotfuse/spotfuse/sparse"
)

// ExprDataOptions configures BuildExprData. Zero values take the defaults
// noted.
type ExprDataOptions struct {
	// HVG is the number of highly variable genes selected on the pooled
	// raw counts, batch-aware with one batch per section (default 2,000).
	HVG int
	// Flavor is the HVG method: preprocess.SeuratV3 (default, on raw
	// counts) or preprocess.Seurat (on log-normalised values).
	Flavor string
	// Target is the library size every spot is scaled to before log1p
	// (default 10⁴).
	Target float64
	// Genes, when set, skips the selection and uses these genes in this
	// order (e.g. those an encoder was trained on); a gene a section lacks
	// is all zeros there (logged).
	Genes []string
}

// BuildExprData pools sections into the matrix the expression tasks train
// on: the genes shared by all sections, the HVG most variable of them
// (batch-aware) or opt.Genes, raw counts of those genes and their
// log1p(count / library × Target) values, where the library is the spot's
// total count over all of its section's genes (scanpy's normalize_total
// then log1p). Batch is the index of each spot's section.
func BuildExprData(secs []*section.Section, opt ExprDataOptions) (*ExprData, error) {
	if len(secs) == 0 {
		return nil, fmt.Errorf("pretrain: no sections to pool")
	}
	if opt.HVG == 0 {
		opt.HVG = 2000
	}
	if opt.Flavor == "" {
		opt.Flavor = preprocess.SeuratV3
	}
	if opt.Target == 0 {
		opt.Target = 1e4
	}
	if !(opt.Target > 0) {
		return nil, fmt.Errorf("pretrain: normalisation target %g must be positive", opt.Target)
	}
	lists := make([][]string, len(secs))
	for s, sec := range secs {
		if err := sec.Validate(); err != nil {
			return nil, err
		}
		lists[s] = sec.Genes
	}
	// index[s][j]: column of gene j in section s (−1 = absent).
	var genes []string
	var index [][]int
	if opt.Genes != nil {
		gm, err := preprocess.MatchGenes(true, append([][]string{opt.Genes}, lists...)...)
		if err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
		genes = opt.Genes
		pos := make(map[string]int, len(gm.Genes))
		for j, g := range gm.Genes {
			pos[g] = j
		}
		index = make([][]int, len(secs))
		for s := range secs {
			index[s] = make([]int, len(genes))
			missing := 0
			for j, g := range genes {
				index[s][j] = gm.Index[s+1][pos[g]]
				if index[s][j] < 0 {
					missing++
				}
			}
			if missing > 0 {
				slog.Warn("pretrain: genes absent from a section are set to zero", "section", secs[s].Name, "missing", missing, "of", len(genes))
			}
		}
	} else {
		gm, err := preprocess.MatchGenes(false, lists...)
		if err != nil {
			return nil, fmt.Errorf("pretrain: sections %s: %w (check that they use the same gene naming, e.g. symbols vs Ensembl ids)", sectionSources(secs), err)
		}
		shared := len(gm.Genes)
		for _, sec := range secs {
			if d := len(sec.Genes) - shared; d > 0 && d*10 >= len(sec.Genes) {
				slog.Warn("pretrain: sections share only some genes; genes absent from any section are dropped",
					"section", sec.Name, "source", sec.Source, "genes", len(sec.Genes), "shared", shared, "dropped", d)
			}
		}
		if opt.HVG > shared {
			return nil, fmt.Errorf("pretrain: asked for %d highly variable genes but the %d sections share only %d genes", opt.HVG, len(secs), shared)
		}
		pooled, batch, err := stackAligned(secs, gm.Index)
		if err != nil {
			return nil, err
		}
		in := pooled
		if opt.Flavor == preprocess.Seurat {
			if in, err = preprocess.NormalizeTotal(pooled, opt.Target); err != nil {
				return nil, fmt.Errorf("pretrain: %w", err)
			}
			in = preprocess.Log1p(in)
		}
		hvg, err := preprocess.HighlyVariableGenes(in, preprocess.HVGOptions{N: opt.HVG, Flavor: opt.Flavor, Batch: batch})
		if err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
		sel := slices.Clone(hvg.Selected)
		slices.Sort(sel)
		genes = make([]string, len(sel))
		index = make([][]int, len(secs))
		for s := range secs {
			index[s] = make([]int, len(sel))
		}
		for j, c := range sel {
			genes[j] = gm.Genes[c]
			for s := range secs {
				index[s][j] = gm.Index[s][c]
			}
		}
	}
	g := len(genes)
	d := &ExprData{G: g, NBatch: len(secs), Genes: genes}
	for _, sec := range secs {
		d.N += sec.NumSpots()
		d.Sections = append(d.Sections, sec.Name)
	}
	d.X = make([]float32, d.N*g)
	d.Counts = make([]float32, d.N*g)
	d.Batch = make([]int, 0, d.N)
	d.SpotIDs = make([]string, 0, d.N)
	row := 0
	for s, sec := range secs {
		lib := sec.Counts.RowSums()
		col := make(map[int32]int, g) // section column → output column
		for j, c := range index[s] {
			if c >= 0 {
				col[int32(c)] = j
			}
		}
		for i := 0; i < sec.NumSpots(); i++ {
			cols, vals := sec.Counts.Row(i)
			out := row * g
			for k, c := range cols {
				j, ok := col[c]
				if !ok {
					continue
				}
				d.Counts[out+j] = vals[k]
				if lib[i] > 0 {
					d.X[out+j] = float32(math.Log1p(float64(vals[k]) / lib[i] * opt.Target))
				}
			}
			d.Batch = append(d.Batch, s)
			d.SpotIDs = append(d.SpotIDs, sec.Spots[i].ID)
			row++
		}
	}
	return d, nil
}

// stackAligned stacks the sections' counts with their columns aligned by index and
// returns the pooled matrix and each row's section.
func stackAligned(secs []*section.Section, index [][]int) (*sparse.CSR, []int, error) {
	var batch []int
	out := &sparse.CSR{Cols: len(index[0]), Indptr: []int{0}}
	for s, sec := range secs {
		m, err := preprocess.Align(sec.Counts, index[s])
		if err != nil {
			return nil, nil, fmt.Errorf("pretrain: section %s: %w", sec.Name, err)
		}
		base := len(out.Data)
		out.Indices = append(out.Indices, m.Indices...)
		out.Data = append(out.Data, m.Data...)
		for i := 1; i <= m.Rows; i++ {
			out.Indptr = append(out.Indptr, base+m.Indptr[i])
			batch = append(batch, s)
		}
		out.Rows += m.Rows
	}
	return out, batch, nil
}

// BuildCrossData pairs the spot patches of those sections that have an
// image (extracted with opt) with the spots' expression over genes,
// log-normalised as BuildExprData does (genes a section lacks are zeros).
// CrossData.Section is the index into secs; the returned pool names the
// section and spot of every row (pool.Section[i], pool.Spot[i]).
func BuildCrossData(ctx context.Context, secs []*section.Section, genes []string, opt patch.Options) (*CrossData, *PatchPool, error) {
	if len(genes) == 0 {
		return nil, nil, fmt.Errorf("pretrain: no genes for the cross-modal data")
	}
	pool, err := CollectPatches(ctx, secs, opt, 0, 0)
	if err != nil {
		return nil, nil, err
	}
	ed, err := BuildExprData(secs, ExprDataOptions{Genes: genes})
	if err != nil {
		return nil, nil, err
	}
	first := make([]int, len(secs)) // first ExprData row of each section
	for s := 1; s < len(secs); s++ {
		first[s] = first[s-1] + secs[s-1].NumSpots()
	}
	g := len(genes)
	d := &CrossData{Patches: pool.Pix, Size: pool.Size, N: len(pool.Pix), G: g, X: make([]float32, 0, len(pool.Pix)*g)}
	for i := range pool.Pix {
		s, sp := pool.Section[i], pool.Spot[i]
		r := first[s] + sp
		d.X = append(d.X, ed.X[r*g:(r+1)*g]...)
		d.Batch = append(d.Batch, s)
		d.Section = append(d.Section, s)
		d.Row = append(d.Row, secs[s].Spots[sp].Row)
		d.Col = append(d.Col, secs[s].Spots[sp].Col)
	}
	return d, pool, nil
}

// sectionSources lists sections as "name (source)" for error messages.
func sectionSources(secs []*section.Section) string {
	parts := make([]string, len(secs))
	for i, s := range secs {
		parts[i] = fmt.Sprintf("%s (%s)", s.Name, s.Source)
	}
	return strings.Join(parts, ", ")
}
