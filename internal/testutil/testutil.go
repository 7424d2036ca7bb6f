// Package testutil holds helpers shared by spotfuse's tests: locating the
// repository root, the HER2ST data and fixtures.
package testutil

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// RepoRoot returns the repository root: the nearest directory at or above
// the working directory that holds go.mod. It fails the test when there is
// none.
func RepoRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// Path returns the path of elem relative to the repository root, e.g.
// Path(tb, "testdata", "h5ad", "A1_sub_dense.h5ad").
func Path(tb testing.TB, elem ...string) string {
	tb.Helper()
	return filepath.Join(append([]string{RepoRoot(tb)}, elem...)...)
}

// HER2ST returns the real HER2ST data directory, ../shared/data/her2st
// beside the repository root. It skips the test when that directory, or
// any of the files need names relative to it, is absent.
func HER2ST(tb testing.TB, need ...string) string {
	tb.Helper()
	dir := HER2STDir(tb)
	for _, p := range append([]string{""}, need...) {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			tb.Skipf("real HER2ST data not found (%v); expected at ../shared/data/her2st beside the repository", err)
		}
	}
	return dir
}

// ReadJSON decodes the JSON file at path into v, failing the test with
// the file's name when it cannot be read or decoded.
func ReadJSON(tb testing.TB, path string, v any) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
}

// HER2STDir returns where the real HER2ST data belong, ../shared/data/her2st
// beside the repository root, without checking that they are there.
func HER2STDir(tb testing.TB) string {
	tb.Helper()
	return filepath.Join(RepoRoot(tb), "..", "shared", "data", "her2st")
}

// ReadFile returns the contents of the file at path, gunzipped when its
// name ends in .gz.
func ReadFile(tb testing.TB, path string) []byte {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	if !strings.HasSuffix(path, ".gz") {
		return b
	}
	r, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	if b, err = io.ReadAll(r); err != nil {
		tb.Fatalf("%s: %v", path, err)
	}
	return b
}

// WriteFile writes b to the file at path, creating its directory and
// gzipping b when the name ends in .gz.
func WriteFile(tb testing.TB, path string, b []byte) {
	tb.Helper()
	if strings.HasSuffix(path, ".gz") {
		var buf bytes.Buffer
		w := gzip.NewWriter(&buf)
		if _, err := w.Write(b); err != nil {
			tb.Fatal(err)
		}
		if err := w.Close(); err != nil {
			tb.Fatal(err)
		}
		b = buf.Bytes()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}

// EditFile rewrites the file at path with fn applied to its text, which is
// gunzipped and gzipped again when the name ends in .gz.
func EditFile(tb testing.TB, path string, fn func(string) string) {
	tb.Helper()
	WriteFile(tb, path, []byte(fn(string(ReadFile(tb, path)))))
}

// CopyTree copies the directory src into a new temporary directory and
// returns the copy's path (whose base name is src's).
func CopyTree(tb testing.TB, src string) string {
	tb.Helper()
	dst := filepath.Join(tb.TempDir(), filepath.Base(src))
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		tb.Fatal(err)
	}
	return dst
}

// Scramble overwrites bytes [from, to) of the file at path (those that
// exist) with a fixed pattern.
func Scramble(tb testing.TB, path string, from, to int) {
	tb.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		tb.Fatal(err)
	}
	for i := from; i < to && i < len(b); i++ {
		b[i] = byte(i*131 + 7)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		tb.Fatal(err)
	}
}
