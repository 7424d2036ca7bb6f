package study

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/spotfuse/spotfuse/section"
)

// her2stDir returns ../shared/data/her2st relative to the repository root,
// or skips when it is absent.
func her2stDir(tb testing.TB) string {
	tb.Helper()
	dir, err := os.Getwd()
	if err != nil {
		tb.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			tb.Skip("no go.mod above the test directory")
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data", "her2st")
	if _, err := os.Stat(data); err != nil {
		tb.Skipf("real HER2ST data not found at %s", data)
	}
	return data
}

// BenchmarkBuildExpression times the study's expression stage on the 36
// real HER2ST sections (gene matching, batch-aware HVG, log-normalisation).
func BenchmarkBuildExpression(b *testing.B) {
	secs, err := section.ReadHER2ST(context.Background(), her2stDir(b), nil, 2, nil)
	if err != nil {
		b.Fatal(err)
	}
	names := make([]string, len(secs))
	for i, s := range secs {
		names[i] = s.Name
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := buildExpression(secs, names, 2000); err != nil {
			b.Fatal(err)
		}
	}
}
