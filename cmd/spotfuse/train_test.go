package main

import (
	"bytes"
	"encoding/csv"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/spotfuse/spotfuse/classify"
	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/section"
)

// tinyConfig trains on the fixture alone: no HER2ST pool, random encoders.
const tinyConfig = `{"pretrain_expr": [], "pretrain_images": [], "hvg": 40, "pca": 5, "patch": {"size": 16},
 "pretrain": {"image": {"off": true, "width": 4, "depth": 2}, "expr": {"off": true, "latent": 8, "hidden": 16}}}`

// resetFlags puts every flag of c and its subcommands back to its default
// (the commands are package globals, so values would leak between runs).
func resetFlags(c *cobra.Command) {
	c.Flags().VisitAll(func(f *pflag.Flag) {
		if sv, ok := f.Value.(pflag.SliceValue); ok {
			var vals []string
			if def := strings.Trim(f.DefValue, "[]"); def != "" {
				vals = strings.Split(def, ",")
			}
			sv.Replace(vals)
		} else {
			f.Value.Set(f.DefValue)
		}
		f.Changed = false
	})
	for _, sub := range c.Commands() {
		resetFlags(sub)
	}
}

func run(t *testing.T, args ...string) string {
	t.Helper()
	resetFlags(root)
	var buf bytes.Buffer
	root.SetOut(&buf)
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		t.Fatalf("spotfuse %s: %v", strings.Join(args, " "), err)
	}
	return buf.String()
}

// TestTrainPredictDomains trains a tiny bundle on the h5ad fixture, then
// predicts and clusters the Space Ranger fixture (the same 40 A1 spots).
// readCSV returns the records of the CSV file at path.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	recs, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return recs
}

func TestTrainPredictDomains(t *testing.T) {
	repo := testutil.RepoRoot(t)
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tiny.json")
	if err := os.WriteFile(cfg, []byte(tinyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(tmp, "tiny.bundle")
	for _, feat := range []string{"pca", "encoder"} {
		out := run(t, "train", "--config", cfg, "--section", filepath.Join(repo, "testdata/h5ad/A1_sub_dense.h5ad"),
			"--expr-features", feat, "--out", bundle)
		if !strings.Contains(out, "heads [fused expr image]") || !strings.Contains(out, "40 genes") {
			t.Fatalf("train output: %s", out)
		}
	}

	// New heads on the same encoders, not centred per section (the default
	// is centred), with a CV report.
	refit := filepath.Join(tmp, "refit.bundle")
	out := run(t, "train", "--from", bundle, "--section", filepath.Join(repo, "testdata/h5ad/A1_sub_dense.h5ad"),
		"--section-center=false", "--cv", "3", "--out", refit)
	if !strings.Contains(out, "3-fold CV on") || !strings.Contains(out, "image head: 40 spots") {
		t.Fatalf("train --from output: %s", out)
	}
	b1, err := classify.LoadBundle(bundle)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := classify.LoadBundle(refit)
	if err != nil {
		t.Fatal(err)
	}
	if !b1.Meta.SectionCenter || b2.Meta.SectionCenter || !slices.Equal(b1.Meta.Genes, b2.Meta.Genes) || b1.Meta.WeightsSHA256 == b2.Meta.WeightsSHA256 {
		t.Fatal("train --from: want the same genes, section centring switched off and new heads")
	}

	visium := filepath.Join(repo, "testdata/visium/A1_sub")
	preds := filepath.Join(tmp, "preds.csv")
	out = run(t, "predict", "--model", bundle, visium, "--labels", filepath.Join(visium, "labels.csv"), "--out", preds,
		"--map", filepath.Join(tmp, "map.png"))
	if !strings.Contains(out, "modality: fused 40") || !strings.Contains(out, "scored on 40 labelled spots") {
		t.Fatalf("predict output: %s", out)
	}
	recs := readCSV(t, preds)
	if len(recs) != 41 || recs[0][0] != "spot_id" || recs[0][len(recs[0])-2] != "modality" {
		t.Fatalf("predictions CSV: %d rows, header %v", len(recs), recs[0])
	}
	if _, err := os.Stat(filepath.Join(tmp, "map.png")); err != nil {
		t.Fatal(err)
	}

	// An .h5ad input also gets an .h5ad copy with the predictions in obs.
	h5 := filepath.Join(repo, "testdata/h5ad/A1_sub_csr.h5ad")
	hp := filepath.Join(tmp, "csr.csv")
	out = run(t, "predict", "--model", bundle, h5, "--out", hp)
	if !strings.Contains(out, "h5ad with predictions: "+filepath.Join(tmp, "csr.h5ad")) {
		t.Fatalf("predict output: %s", out)
	}
	back, err := section.Open(filepath.Join(tmp, "csr.h5ad"), section.Options{LabelColumn: "spotfuse_label"})
	if err != nil {
		t.Fatal(err)
	}
	hrecs := readCSV(t, hp)
	for i, r := range hrecs[1:] {
		if back.Spots[i].ID != r[0] || back.Labels[i] != r[5] {
			t.Fatalf("spot %d: h5ad has %s %q, CSV has %s %q", i, back.Spots[i].ID, back.Labels[i], r[0], r[5])
		}
	}

	domains := filepath.Join(tmp, "domains.csv")
	out = run(t, "domains", "--model", bundle, filepath.Join(repo, "testdata/h5ad/A1_sub_csr.h5ad"), "--out", domains,
		"--maps", filepath.Join(tmp, "maps"), "--smooth")
	for _, w := range []string{"expr      kmeans-smoothed", "fused     louvain", "image     kmeans-smoothed"} {
		if !strings.Contains(out, w) {
			t.Errorf("domains output lacks %q:\n%s", w, out)
		}
	}
	drecs := readCSV(t, domains)
	if len(drecs) != 7 {
		t.Fatalf("domains CSV has %d rows, want 6 + header", len(drecs))
	}
	for _, r := range drecs[1:] {
		if r[5] != "40" || r[6] == "NA" || r[7] == "NA" {
			t.Fatalf("domains row %v: want 40 scored spots and finite ARI/NMI", r)
		}
	}
	maps, _ := os.ReadDir(filepath.Join(tmp, "maps"))
	if len(maps) != 6 {
		t.Fatalf("%d domain maps, want 6", len(maps))
	}
}

func TestScoreDomains(t *testing.T) {
	r := scoreDomains("s", "expr", "kmeans", []int{0, 0, 1, 1, 2}, []int{1, 1, 0, 0, -1}, 0)
	if r.Scored != 4 || r.Clusters != 3 || math.Abs(r.ARI-1) > 1e-12 || math.Abs(r.NMI-1) > 1e-12 {
		t.Fatalf("%+v: want 4 scored spots, 3 clusters and a perfect match", r)
	}
	r = scoreDomains("s", "expr", "kmeans", []int{0, 1}, []int{-1, -1}, 0)
	if !math.IsNaN(r.ARI) || r.Scored != 0 {
		t.Fatalf("%+v: unlabelled section must have undefined scores", r)
	}
}

// TestPredictHER2STSection predicts a real HER2ST section without an image
// (B1, legacy ST) with a bundle trained on the fixture: every spot gets an
// expression-only label and the labelled spots are scored.
func TestPredictHER2STSection(t *testing.T) {
	repo := testutil.RepoRoot(t)
	data := testutil.HER2ST(t, "counts/B1.tsv.gz")
	tmp := t.TempDir()
	cfg := filepath.Join(tmp, "tiny.json")
	if err := os.WriteFile(cfg, []byte(tinyConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	bundle := filepath.Join(tmp, "tiny.bundle")
	run(t, "train", "--config", cfg, "--section", filepath.Join(repo, "testdata/h5ad/A1_sub_dense.h5ad"),
		"--expr-features", "pca", "--out", bundle)
	out := run(t, "predict", "--model", bundle, "--data", data, "B1", "--out", filepath.Join(tmp, "B1.csv"))
	for _, w := range []string{"section B1: 295 spots", "modality: expr 295", "scored on"} {
		if !strings.Contains(out, w) {
			t.Errorf("predict output lacks %q:\n%s", w, out)
		}
	}
}
