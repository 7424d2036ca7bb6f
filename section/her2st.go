package section

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"

	"github.com/spotfuse/spotfuse/progress"
)

// HER2STSections lists the 36 sections of the HER2-positive breast cancer
// ST data set (Andersson et al. 2021), patients A–H.
var HER2STSections = []string{
	"A1", "A2", "A3", "A4", "A5", "A6", "B1", "B2", "B3", "B4", "B5", "B6",
	"C1", "C2", "C3", "C4", "C5", "C6", "D1", "D2", "D3", "D4", "D5", "D6",
	"E1", "E2", "E3", "F1", "F2", "F3", "G1", "G2", "G3", "H1", "H2", "H3",
}

// HER2STLabelled lists the sections with pathologist labels.
var HER2STLabelled = []string{"A1", "B1", "C1", "D1", "E1", "F1"}

// HER2ST returns the counts path of section name in a her2st directory
// laid out as counts/, spots/, labels/, images/, scalefactors.tsv.
func HER2ST(dir, name string) string {
	return filepath.Join(dir, "counts", name+".tsv.gz")
}

// ReadHER2ST reads the named sections of a her2st directory (all 36 when
// names is nil) with up to workers files decoded at once, in names order.
func ReadHER2ST(ctx context.Context, dir string, names []string, workers int, rep progress.Reporter) ([]*Section, error) {
	if names == nil {
		names = HER2STSections
	}
	if workers < 1 {
		workers = 1
	}
	rep = progress.Or(rep)
	rep.Start("reading her2st", len(names))
	defer rep.Finish()
	out := make([]*Section, len(names))
	errs := make([]error, len(names))
	jobs := make(chan int)
	var wg sync.WaitGroup
	var mu sync.Mutex
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				out[i], errs[i] = ReadLegacyST(HER2ST(dir, names[i]), Options{})
				mu.Lock()
				rep.Add(1)
				mu.Unlock()
			}
		}()
	}
feed:
	for i := range names {
		select {
		case <-ctx.Done():
			break feed
		case jobs <- i:
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("section: reading her2st: %w", err)
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
