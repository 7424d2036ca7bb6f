package study

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	c, err := Parse(strings.NewReader(`{}`), "demo")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "demo" || c.Out != filepath.Join("out", "demo") || c.HVG != 2000 || c.Folds != 5 || c.Seeds != 5 {
		t.Errorf("defaults not filled: %+v", c)
	}
	if len(c.PretrainExpr) != 36 || c.Targets[0] != "A1" || len(c.LOSO) != 5 || len(c.Fractions) != 6 {
		t.Errorf("section/fraction defaults wrong: %+v", c)
	}
	// An explicit empty list is kept.
	c, err = Parse(strings.NewReader(`{"loso": [], "fusions": []}`), "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(c.LOSO) != 0 || len(c.Fusions) != 0 {
		t.Errorf("explicit [] replaced by default: loso %v fusions %v", c.LOSO, c.Fusions)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, json string
		want       []string // substrings of the error
	}{
		{"unknown top-level", `{"folds": 5, "fold": 3}`, []string{"bad.json", `unknown field "fold"`}},
		{"unknown nested", `{"pretrain": {"image": {"stepz": 1}}}`, []string{"bad.json", `"stepz"`}},
		{"type", `{"folds": "five"}`, []string{"bad.json", `"folds"`, "string"}},
		{"syntax", "{\n\"folds\": 5,,\n}", []string{"bad.json", "line 2"}},
		{"empty", ``, []string{"bad.json", "empty"}},
		{"fraction", `{"fractions": [0.1, 1.5]}`, []string{`"fractions"`, "1.5"}},
		{"head", `{"heads": ["svm"]}`, []string{`"heads"`, "svm"}},
		{"task", `{"pretrain": {"image": {"tasks": {"jigsaw": 1}}}}`, []string{"jigsaw"}},
		{"no tasks", `{"pretrain": {"image": {"tasks": {"inpaint": 0}}}}`, []string{"no task"}},
		{"folds", `{"folds": 1}`, []string{`"folds"`}},
		{"nothing", `{"targets": [], "loso": []}`, []string{"nothing to evaluate"}},
		{"dup", `{"targets": ["A1", "A1"]}`, []string{"twice"}},
		{"trailing", `{} {}`, []string{"trailing"}},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		path := filepath.Join(dir, "bad.json")
		if err := os.WriteFile(path, []byte(tc.json), 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
	if _, err := Load(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("missing file: no error")
	}
}

// The committed study configs must load.
func TestCommittedConfigs(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join("..", "studies", "*.json"))
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Error(err)
		}
	}
}
