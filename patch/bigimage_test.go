package patch

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/spotfuse/spotfuse/internal/testutil"
	"github.com/spotfuse/spotfuse/section"
)

// TestBigImagePeakMemory extracts patches from a large image and logs the
// peak RSS; it measures rather than asserts (the figure depends on the
// machine) and runs only when asked, e.g.
//
//	testdata/gen_bigtiff.sh big /tmp/big20k.tif
//	go test -c -o /tmp/patch.test ./patch
//	SPOTFUSE_BIG_IMAGE=/tmp/big20k.tif /usr/bin/time -v /tmp/patch.test -test.run BigImage -test.v
//	SPOTFUSE_BIG_IMAGE=her2st:C2 /usr/bin/time -v /tmp/patch.test -test.run BigImage -test.v
//
// A path extracts a 70×70 (SPOTFUSE_BIG_GRID) grid of spots (diameter 200 px, 64 px patches)
// from the image; "her2st:NAME" extracts every spot of that her2st section
// from its full-resolution JPEG.
func TestBigImagePeakMemory(t *testing.T) {
	what := os.Getenv("SPOTFUSE_BIG_IMAGE")
	if what == "" {
		t.Skip("set SPOTFUSE_BIG_IMAGE to a big image or her2st:NAME to measure")
	}
	var sec *section.Section
	if name, ok := strings.CutPrefix(what, "her2st:"); ok {
		dir := testutil.HER2ST(t, "counts/A1.tsv.gz")
		s, err := section.Open(filepath.Join(dir, "counts", name+".tsv.gz"), section.Options{})
		if err != nil {
			t.Fatal(err)
		}
		sec = s
	} else {
		img, done, err := OpenImage(what)
		if err != nil {
			t.Fatal(err)
		}
		b := img.Bounds()
		done()
		n := 70
		if v, err := strconv.Atoi(os.Getenv("SPOTFUSE_BIG_GRID")); err == nil && v > 1 {
			n = v
		}
		sec = gridSection(what, b.Dx(), b.Dy(), n, 200)
	}
	start := time.Now()
	set, err := Extract(context.Background(), sec, Options{Size: 64})
	if err != nil {
		t.Fatal(err)
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	t.Logf("%s: %d patches (%d skipped) in %.1f s; peak RSS %.0f MiB", what, len(set.Pix)-len(set.Skipped),
		len(set.Skipped), time.Since(start).Seconds(), float64(ru.Maxrss)/1024)
}
