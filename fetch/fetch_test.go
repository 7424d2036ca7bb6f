package fetch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/spotfuse/spotfuse/internal/testutil"
)

func TestManifest(t *testing.T) {
	files := HER2STManifest()
	if len(files) != 87 {
		t.Fatalf("%d files, want 87 (36 counts, 36 spots, 6 labels, 8 images, scalefactors)", len(files))
	}
	n := map[string]int{}
	for _, f := range files {
		n[strings.SplitN(f.Path, "/", 2)[0]]++
		if len(f.SHA256) != 64 {
			t.Errorf("%s: sum %q", f.Path, f.SHA256)
		}
		if f.Source == "" && f.data == nil {
			t.Errorf("%s: neither a source path nor embedded content", f.Path)
		}
	}
	if n["counts"] != 36 || n["spots"] != 36 || n["labels"] != 6 || n["images"] != 8 || n["scalefactors.tsv"] != 1 {
		t.Errorf("layout %v", n)
	}
}

// server serves the shared her2st files under their source paths, applying
// mutate (if set) to the bytes and counting requests.
type server struct {
	dir    string
	bySrc  map[string]string
	mutate func(path string, b []byte) []byte
	fail   map[string]int // source path -> number of 500s to send first
	mu     sync.Mutex
	hits   int
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.hits++
	src := strings.TrimPrefix(r.URL.Path, "/base/")
	if s.fail[src] > 0 {
		s.fail[src]--
		s.mu.Unlock()
		http.Error(w, "flaky", http.StatusInternalServerError)
		return
	}
	s.mu.Unlock()
	rel, ok := s.bySrc[src]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := os.ReadFile(filepath.Join(s.dir, rel))
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	if s.mutate != nil {
		b = s.mutate(rel, b)
	}
	w.Write(b)
}

func newServer(t *testing.T) (*server, *httptest.Server) {
	s := &server{dir: testutil.HER2ST(t, "SHA256SUMS"), bySrc: map[string]string{}, fail: map[string]int{}}
	for _, f := range HER2STManifest() {
		if f.Source != "" {
			s.bySrc[f.Source] = f.Path
		}
	}
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

func TestFetchHER2ST(t *testing.T) {
	s, ts := newServer(t)
	dir := t.TempDir()
	// A flaky first answer for one file is retried.
	s.fail["data/ST-cnts/B2.tsv.gz"] = 1
	opt := Options{Dir: dir, BaseURL: ts.URL + "/base"}
	res, err := HER2ST(context.Background(), opt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Downloaded != 87 || res.Present != 0 {
		t.Errorf("first run %+v", res)
	}
	for _, f := range HER2STManifest() {
		got, err := fileSum(filepath.Join(dir, f.Path))
		if err != nil || got != f.SHA256 {
			t.Errorf("%s: %v %s", f.Path, err, got)
		}
	}
	// Second run: everything present, no requests.
	s.hits = 0
	res, err = HER2ST(context.Background(), opt)
	if err != nil || res.Present != 87 || res.Downloaded != 0 || s.hits != 0 {
		t.Errorf("second run %+v err %v, %d requests", res, err, s.hits)
	}
	// A damaged cached file is fetched again.
	os.WriteFile(filepath.Join(dir, "spots/A1_selection.tsv"), []byte("x"), 0o644)
	res, err = HER2ST(context.Background(), opt)
	if err != nil || res.Downloaded != 1 {
		t.Errorf("repair run %+v err %v", res, err)
	}
}

func TestFetchChecksumMismatch(t *testing.T) {
	s, ts := newServer(t)
	s.mutate = func(path string, b []byte) []byte {
		if path == "labels/C1_labeled_coordinates.tsv" {
			b = append([]byte(nil), b...)
			b[10] ^= 1
		}
		return b
	}
	dir := t.TempDir()
	_, err := HER2ST(context.Background(), Options{Dir: dir, BaseURL: ts.URL + "/base",
		Only: []string{"labels/B1_labeled_coordinates.tsv", "labels/C1_labeled_coordinates.tsv"}})
	if err == nil || !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "labels/C1_labeled_coordinates.tsv") {
		t.Fatalf("want a checksum error naming the file, got %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "labels/C1_labeled_coordinates.tsv")); !os.IsNotExist(err) {
		t.Errorf("corrupt file was written: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "labels/B1_labeled_coordinates.tsv")); err != nil {
		t.Errorf("good file missing: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "labels", ".*tmp*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}

func TestFetchErrors(t *testing.T) {
	_, ts := newServer(t)
	tests := []struct {
		name string
		opt  Options
		want string
	}{
		{"unknown file", Options{Only: []string{"counts/Z9.tsv.gz"}}, "counts/Z9.tsv.gz is not part of the data set"},
		{"404", Options{BaseURL: ts.URL + "/elsewhere", Only: []string{"counts/A1.tsv.gz"}}, "counts/A1.tsv.gz: GET " + ts.URL + "/elsewhere/data/ST-cnts/A1.tsv.gz: 404"},
	}
	for _, tc := range tests {
		tc.opt.Dir = t.TempDir()
		if tc.opt.BaseURL == "" {
			tc.opt.BaseURL = ts.URL + "/base"
		}
		_, err := HER2ST(context.Background(), tc.opt)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestDefaultCacheDir(t *testing.T) {
	t.Setenv("XDG_CACHE_HOME", "/x/cache")
	if d, _ := DefaultCacheDir("her2st"); d != "/x/cache/spotfuse/her2st" {
		t.Errorf("XDG: %s", d)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, _ := DefaultCacheDir("her2st"); d != "/home/u/.cache/spotfuse/her2st" {
		t.Errorf("home: %s", d)
	}
}
