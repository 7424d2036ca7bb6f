// Package fetch downloads public data sets into a local cache, verifying
// every file against SHA-256 sums embedded in the package, skipping files
// already present and verified, and writing each file atomically.
//
// The only data set so far is her2st (Andersson et al. 2021): the original
// files of github.com/almaan/her2st at a fixed commit, laid out as
// counts/, spots/, labels/, images/ and scalefactors.tsv, which package
// section reads with section.HER2ST and section.ReadLegacyST.
package fetch

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/spotfuse/spotfuse/atomicfile"
	"github.com/spotfuse/spotfuse/progress"
)

// HER2STCommit is the almaan/her2st commit the manifest was taken from.
const HER2STCommit = "85df7411b987a7dec3feff9718b869a7a82091ec"

// HER2STBaseURL serves raw files of the repository at HER2STCommit.
const HER2STBaseURL = "https://raw.githubusercontent.com/almaan/her2st/" + HER2STCommit

//go:embed her2st.sha256
var her2stSums string

// her2stScalefactors is the image metadata table (not in the source
// repository; see the her2st README for how it was measured).
//
//go:embed her2st_scalefactors.tsv
var her2stScalefactors []byte

// File is one file of a data set.
type File struct {
	Path   string // path in the cache directory
	Source string // path in the source repository; "" when the file is embedded
	SHA256 string // hex digest
	data   []byte // embedded content when Source is ""
}

// her2stImages maps cached image names to their source paths.
var her2stImages = map[string]string{
	"images/A1_HE_image_dark.png": "app/www/imgs/A1_HE_image_dark.png",
	"images/A2_HE_image_dark.png": "app/www/imgs/A2_HE_image_dark.png",
	"images/B4_HE.jpg":            "data/ST-imgs/B/B4/BT10737_D2_HE.jpg",
	"images/C2_HE.jpg":            "data/ST-imgs/C/C2/5714_HE_BT_C2.jpg",
	"images/C3_HE.jpg":            "data/ST-imgs/C/C3/5714_HE_BT_D1.jpg",
	"images/C4_HE.jpg":            "data/ST-imgs/C/C4/5714_HE_BT_D2.jpg",
	"images/C5_HE.jpg":            "data/ST-imgs/C/C5/5714_HE_BT_E1.jpg",
	"images/C6_HE.jpg":            "data/ST-imgs/C/C6/5714_HE_BT_E2.jpg",
}

// HER2STManifest lists the her2st files with their source paths and sums.
func HER2STManifest() []File {
	var files []File
	sc := bufio.NewScanner(strings.NewReader(her2stSums))
	for sc.Scan() {
		sum, path, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			continue
		}
		f := File{Path: path, SHA256: sum}
		dir, base := filepath.Split(path)
		switch dir {
		case "counts/":
			f.Source = "data/ST-cnts/" + base
		case "spots/":
			f.Source = "data/ST-spotfiles/" + base
		case "labels/":
			f.Source = "data/ST-pat/lbl/" + base
		case "images/":
			f.Source = her2stImages[path]
		case "":
			f.data = her2stScalefactors
		}
		files = append(files, f)
	}
	return files
}

// DefaultCacheDir returns $XDG_CACHE_HOME/spotfuse/NAME, or
// ~/.cache/spotfuse/NAME when XDG_CACHE_HOME is unset.
func DefaultCacheDir(name string) (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "spotfuse", name), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("fetch: no cache directory: %w", err)
	}
	return filepath.Join(home, ".cache", "spotfuse", name), nil
}

// Options control a download.
type Options struct {
	Dir      string       // cache directory (default DefaultCacheDir)
	BaseURL  string       // source base URL (default the data set's)
	Client   *http.Client // default http.DefaultClient
	Only     []string     // cache paths to fetch (default all)
	Progress progress.Reporter
}

// Result counts what a download did.
type Result struct {
	Dir                 string
	Downloaded, Present int // fetched now; already present and verified
}

// HER2ST downloads the her2st data set (see HER2STManifest).
func HER2ST(ctx context.Context, opt Options) (Result, error) {
	if opt.Dir == "" {
		d, err := DefaultCacheDir("her2st")
		if err != nil {
			return Result{}, err
		}
		opt.Dir = d
	}
	if opt.BaseURL == "" {
		opt.BaseURL = HER2STBaseURL
	}
	return Fetch(ctx, HER2STManifest(), opt)
}

// Fetch makes every file of the manifest present and verified in opt.Dir:
// files already there with the right sum are kept; others are downloaded
// from opt.BaseURL + "/" + Source (retried once) or written from embedded
// content, checked, and renamed into place.
func Fetch(ctx context.Context, files []File, opt Options) (Result, error) {
	res := Result{Dir: opt.Dir}
	if opt.Client == nil {
		opt.Client = http.DefaultClient
	}
	if len(opt.Only) > 0 {
		want := map[string]bool{}
		for _, p := range opt.Only {
			want[p] = true
		}
		var sel []File
		for _, f := range files {
			if want[f.Path] {
				sel = append(sel, f)
				delete(want, f.Path)
			}
		}
		for p := range want {
			return res, fmt.Errorf("fetch: %s is not part of the data set", p)
		}
		files = sel
	}
	rep := progress.Or(opt.Progress)
	rep.Start("fetching", len(files))
	defer rep.Finish()
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		dst := filepath.Join(opt.Dir, filepath.FromSlash(f.Path))
		if sum, err := fileSum(dst); err == nil && sum == f.SHA256 {
			res.Present++
			rep.Add(1)
			continue
		} else if err == nil {
			slog.Warn("cached file has the wrong checksum; fetching again", "file", dst)
		}
		var err error
		for attempt := 0; attempt < 2; attempt++ {
			if err = fetchOne(ctx, opt, f, dst); err == nil {
				break
			}
			if ctx.Err() != nil {
				break
			}
			if attempt == 0 {
				slog.Warn("download failed; retrying once", "file", f.Path, "err", err)
			}
		}
		if err != nil {
			return res, err
		}
		res.Downloaded++
		rep.Add(1)
	}
	return res, nil
}

// ErrChecksum is wrapped by errors for content that does not match the manifest.
var ErrChecksum = errors.New("checksum mismatch")

func fetchOne(ctx context.Context, opt Options, f File, dst string) error {
	var body io.Reader
	src := "embedded table"
	if f.Source == "" {
		body = strings.NewReader(string(f.data))
	} else {
		src = strings.TrimRight(opt.BaseURL, "/") + "/" + f.Source
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
		if err != nil {
			return fmt.Errorf("fetch: %s: %w", f.Path, err)
		}
		resp, err := opt.Client.Do(req)
		if err != nil {
			return fmt.Errorf("fetch: %s: %w", f.Path, err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("fetch: %s: GET %s: %s", f.Path, src, resp.Status)
		}
		body = resp.Body
	}
	return atomicfile.Write(dst, func(w io.Writer) error {
		h := sha256.New()
		if _, err := io.Copy(io.MultiWriter(w, h), body); err != nil {
			return fmt.Errorf("fetch: %s: reading %s: %w", f.Path, src, err)
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != f.SHA256 {
			return fmt.Errorf("fetch: %s: %w: got sha256 %s, want %s (from %s)", f.Path, ErrChecksum, got, f.SHA256, src)
		}
		return nil
	})
}

// fileSum returns the hex SHA-256 of a file.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
