// Package atomicfile writes output files atomically: data goes to a
// temporary file in the same directory, is synced, and is renamed over the
// target, so a crash never leaves a half-written result.
package atomicfile

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
)

// Write calls fn with a writer to a temporary file and, if fn succeeds,
// renames it to path. On any error the temporary file is removed and path is
// left untouched.
func Write(path string, fn func(w io.Writer) error) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err = fn(f); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// WriteFile writes data to path atomically.
func WriteFile(path string, data []byte) error {
	return Write(path, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	})
}
