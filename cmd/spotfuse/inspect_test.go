package main

import (
	"bytes"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

func TestInspect(t *testing.T) {
	repo := testutil.RepoRoot(t)
	shared := filepath.Join(testutil.HER2STDir(t), "counts", "A1.tsv.gz")
	tests := []struct {
		name    string
		args    []string
		want    []string
		overlay bool
		shared  bool
	}{
		{"fixture", []string{"inspect", filepath.Join(repo, "section/testdata/st/counts/A1.tsv.gz")},
			[]string{"name:         A1", "format:       legacy-st", "spots:        20", "genes:        50", "image:        none", "invasive cancer      18", "adipose tissue       2"}, false, false},
		{"A1 with overlay", []string{"inspect", shared, "--overlay"},
			[]string{"spots:        346", "genes:        15045", "(2000×2138)", "scale 0.287604", "spot diam:    31.3 px", "invasive cancer      282"}, true, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.shared {
				testutil.HER2ST(t, "counts/A1.tsv.gz")
			}
			args := tc.args
			out := filepath.Join(t.TempDir(), "ov.png")
			if tc.overlay {
				args = append(args, out)
			}
			var buf bytes.Buffer
			root.SetOut(&buf)
			root.SetArgs(args)
			if err := root.Execute(); err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(buf.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, buf.String())
				}
			}
			if tc.overlay {
				f, err := os.Open(out)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cfg, err := png.DecodeConfig(f)
				if err != nil || cfg.Width != 2000 || cfg.Height != 2138 {
					t.Errorf("overlay %v %+v", err, cfg)
				}
			}
		})
	}
}
