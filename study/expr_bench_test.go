package study

import (
	"context"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/section"
)

// BenchmarkBuildExpression times the study's expression stage on the 36
// real HER2ST sections (gene matching, batch-aware HVG, log-normalisation).
func BenchmarkBuildExpression(b *testing.B) {
	secs, err := section.ReadHER2ST(context.Background(), testutil.HER2ST(b), nil, 2, nil)
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
