package study

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// FuzzConfig checks that any config file either loads into a configuration
// that validates and survives a JSON round trip unchanged, or gives an error
// naming the file; never a panic.
func FuzzConfig(f *testing.F) {
	def, err := json.Marshal(Default())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(def)
	f.Add([]byte(`{}`))
	f.Add([]byte(`{"loso": [], "fusions": [], "targets": ["A1"], "folds": 3}`))
	f.Add([]byte(`{"pretrain": {"image": {"tasks": {"inpaint": 1, "colorize": 0}, "steps": 10}, "expr": {"task": "masked"}}}`))
	f.Add([]byte(`{"fractions": [0.1, 1.5], "patch": {"size": 4}}`))
	f.Add([]byte("{\n\"folds\": 5,,\n}"))
	dir := f.TempDir()
	path := filepath.Join(dir, "fuzz.json")
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Load(path)
		if err != nil {
			if !strings.Contains(err.Error(), path) {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("loaded config does not validate: %v", err)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("loaded config cannot be written back: %v", err)
		}
		c2, err := Parse(strings.NewReader(string(again)), "other")
		if err != nil {
			t.Fatalf("written-back config %s does not load: %v", again, err)
		}
		if !reflect.DeepEqual(c, c2) {
			t.Fatalf("round trip changed the config:\n%+v\n%+v", c, c2)
		}
	})
}
