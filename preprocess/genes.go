package preprocess

import (
	"fmt"
	"slices"

	"github.com/spotfuse/spotfuse/sparse"
)

// GeneMatch lines up the genes of several sections.
type GeneMatch struct {
	// Genes is the shared gene list: the intersection in the first
	// section's order, or the union in order of first appearance.
	Genes []string
	// Index[s][j] is the column of Genes[j] in section s, or −1 when
	// section s lacks it (union only).
	Index [][]int
	// Missing[s] lists the union genes that section s lacks (empty for an
	// intersection); Dropped[s] lists section s's genes left out of an
	// intersection.
	Missing, Dropped [][]string
	// Duplicates[s] lists gene names occurring more than once in section s;
	// the first occurrence is used.
	Duplicates [][]string
}

// MatchGenes matches gene names across sections: the intersection, or the
// union when union is true. It fails when no gene is shared or no list is
// given.
func MatchGenes(union bool, geneLists ...[]string) (*GeneMatch, error) {
	if len(geneLists) == 0 {
		return nil, fmt.Errorf("preprocess: no gene lists to match")
	}
	ns := len(geneLists)
	gm := &GeneMatch{
		Index:      make([][]int, ns),
		Missing:    make([][]string, ns),
		Dropped:    make([][]string, ns),
		Duplicates: make([][]string, ns),
	}
	pos := make([]map[string]int, ns)
	for s, genes := range geneLists {
		pos[s] = make(map[string]int, len(genes))
		for j, g := range genes {
			if _, dup := pos[s][g]; dup {
				gm.Duplicates[s] = append(gm.Duplicates[s], g)
				continue
			}
			pos[s][g] = j
		}
	}
	if union {
		seen := map[string]bool{}
		for _, genes := range geneLists {
			for _, g := range genes {
				if !seen[g] {
					seen[g] = true
					gm.Genes = append(gm.Genes, g)
				}
			}
		}
	} else {
		taken := map[string]bool{}
		for _, g := range geneLists[0] {
			if taken[g] {
				continue
			}
			in := true
			for s := 1; s < ns && in; s++ {
				_, in = pos[s][g]
			}
			if in {
				taken[g] = true
				gm.Genes = append(gm.Genes, g)
			}
		}
	}
	if len(gm.Genes) == 0 {
		return nil, fmt.Errorf("preprocess: the %d sections share no gene name", ns)
	}
	kept := make(map[string]bool, len(gm.Genes))
	for _, g := range gm.Genes {
		kept[g] = true
	}
	for s := range ns {
		gm.Index[s] = make([]int, len(gm.Genes))
		for j, g := range gm.Genes {
			if c, ok := pos[s][g]; ok {
				gm.Index[s][j] = c
			} else {
				gm.Index[s][j] = -1
				gm.Missing[s] = append(gm.Missing[s], g)
			}
		}
		for j, g := range geneLists[s] {
			if !kept[g] && pos[s][g] == j {
				gm.Dropped[s] = append(gm.Dropped[s], g)
			}
		}
	}
	return gm, nil
}

// Align returns m with columns rearranged to index (from GeneMatch.Index):
// new column j is old column index[j], or all zeros when index[j] is −1.
func Align(m *sparse.CSR, index []int) (*sparse.CSR, error) {
	newCol := make([][]int32, m.Cols)
	for j, c := range index {
		if c < -1 || c >= m.Cols {
			return nil, fmt.Errorf("preprocess: align index %d outside the %d columns", c, m.Cols)
		}
		if c >= 0 {
			newCol[c] = append(newCol[c], int32(j))
		}
	}
	out := &sparse.CSR{Rows: m.Rows, Cols: len(index), Indptr: make([]int, 1, m.Rows+1)}
	type pair struct {
		c int32
		v float32
	}
	var buf []pair
	for i := 0; i < m.Rows; i++ {
		buf = buf[:0]
		c, v := m.Row(i)
		for k := range c {
			for _, j := range newCol[c[k]] {
				buf = append(buf, pair{j, v[k]})
			}
		}
		slices.SortFunc(buf, func(a, b pair) int { return int(a.c) - int(b.c) })
		for _, p := range buf {
			out.Indices = append(out.Indices, p.c)
			out.Data = append(out.Data, p.v)
		}
		out.Indptr = append(out.Indptr, len(out.Data))
	}
	return out, nil
}
