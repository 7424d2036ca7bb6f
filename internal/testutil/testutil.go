// Package testutil holds helpers shared by spotfuse's tests: locating the
// repository root, the HER2ST data and fixtures.
package testutil

import (
	"encoding/json"
	"os"
	"path/filepath"
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
