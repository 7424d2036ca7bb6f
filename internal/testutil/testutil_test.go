package testutil

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestRepoRoot(t *testing.T) {
	root := RepoRoot(t)
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("RepoRoot = %s has no go.mod: %v", root, err)
	}
	if _, err := os.Stat(filepath.Join(root, "internal", "testutil", "testutil.go")); err != nil {
		t.Fatalf("RepoRoot = %s is not this repository: %v", root, err)
	}
	if got, want := Path(t, "internal", "testutil"), filepath.Join(root, "internal", "testutil"); got != want {
		t.Fatalf("Path = %s, want %s", got, want)
	}
}

func TestReadJSON(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.json")
	if err := os.WriteFile(good, []byte(`{"a": [1, 2]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	var v struct{ A []int }
	ReadJSON(t, good, &v)
	if len(v.A) != 2 || v.A[0] != 1 || v.A[1] != 2 {
		t.Fatalf("decoded %+v, want A=[1 2]", v)
	}
}

func TestHER2STSkipsWhenFileMissing(t *testing.T) {
	var skipped bool
	t.Run("missing", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		HER2ST(t, "no-such-file-in-her2st")
	})
	if !skipped {
		t.Fatal("HER2ST did not skip for a missing file")
	}
}

func TestFilesRoundTrip(t *testing.T) {
	for _, name := range []string{"plain.tsv", "sub/packed.tsv.gz"} {
		t.Run(name, func(t *testing.T) {
			src := filepath.Join(t.TempDir(), "tree")
			p := filepath.Join(src, name)
			WriteFile(t, p, []byte("a\tb\n1\t2\n"))
			if raw, err := os.ReadFile(p); err != nil {
				t.Fatal(err)
			} else if gz := raw[0] == 0x1f && raw[1] == 0x8b; gz != (filepath.Ext(name) == ".gz") {
				t.Fatalf("%s stored gzipped=%v", name, gz)
			}
			EditFile(t, p, func(s string) string { return s + "3\t4\n" })
			dst := CopyTree(t, src)
			if filepath.Base(dst) != "tree" {
				t.Fatalf("copy %s does not keep the base name", dst)
			}
			if got, want := string(ReadFile(t, filepath.Join(dst, name))), "a\tb\n1\t2\n3\t4\n"; got != want {
				t.Fatalf("copied %q, want %q", got, want)
			}
		})
	}
}

func TestScramble(t *testing.T) {
	p := filepath.Join(t.TempDir(), "f")
	WriteFile(t, p, make([]byte, 8))
	Scramble(t, p, 2, 20)
	b := ReadFile(t, p)
	want := []byte{0, 0, 2*131 + 7 - 256, 3*131 + 7 - 256, 4*131 + 7 - 512, 5*131 + 7 - 512, 6*131 + 7 - 768, 7*131 + 7 - 768}
	if !slices.Equal(b, want) {
		t.Fatalf("scrambled %v", b)
	}
}
