package h5write

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/scigolib/hdf5"
)

// TestLookup3 checks the checksum against the test vectors printed by the
// driver of Bob Jenkins' lookup3.c (hashlittle, initval 0).
func TestLookup3(t *testing.T) {
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 0xdeadbeef},
		{"Four score and seven years ago", 0x17770551},
	}
	for _, tt := range tests {
		if got := lookup3([]byte(tt.in)); got != tt.want {
			t.Errorf("lookup3(%q) = %#x, want %#x", tt.in, got, tt.want)
		}
	}
}

// sample builds a file using every element kind in datasets and
// attributes, nested groups, a 2-D and a scalar dataset.
func sample() *File {
	f := New()
	f.Root().Attr("encoding-type", "anndata").Attr("encoding-version", "0.1.0")
	g := f.Root().Group("obs").
		Attr("column-order", []string{"a", "bb", ""}).
		Attr("ordered", false).
		Attr("none", []float64{}).
		Attr("shape", []int64{3, 2})
	g.Dataset("_index", []string{"x", "", "yy", "héllo"}).Attr("encoding-type", "string-array")
	g.Dataset("f32", []float32{1.5, -2})
	g.Dataset("f64", []float64{1, 2, 3, 4, 5, 6}, 3, 2)
	g.Dataset("scalar", 0.287604)
	g.Dataset("i8", []int8{-1, 2}).Attr("n", int64(5)).Attr("i16", int16(-7))
	g.Dataset("i16", []int16{-300, 2})
	g.Dataset("i32", []int32{-70000, 2})
	g.Dataset("i64", []int64{-1 << 40, 2})
	g.Dataset("bool", []bool{true, false, true})
	g.Dataset("empty", []float64{})
	g.Group("sub").Group("deeper").Attr("x", 1.5).Attr("flag", true)
	f.Root().Group("ünï").Dataset("s", "scalar string")
	f.Root().Group(strings.Repeat("n", 300)) // a name longer than 255 bytes
	return f
}

func writeFile(t *testing.T, f *File) string {
	t.Helper()
	var buf bytes.Buffer
	n, err := f.WriteTo(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) {
		t.Fatalf("WriteTo returned %d, wrote %d bytes", n, buf.Len())
	}
	p := filepath.Join(t.TempDir(), "f.h5")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// open reads a file with github.com/scigolib/hdf5, the reader spotfuse
// uses, and indexes its objects by path.
func open(t *testing.T, p string) map[string]hdf5.Object {
	t.Helper()
	r, err := hdf5.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	objs := map[string]hdf5.Object{}
	r.Walk(func(path string, o hdf5.Object) { objs[strings.TrimSuffix(path, "/")] = o })
	return objs
}

// readStrings reads a variable-length string dataset.
func readStrings(o hdf5.Object) ([]string, error) {
	b, err := o.(*hdf5.Dataset).ReadVLenBytes()
	s := make([]string, len(b))
	for i := range b {
		s[i] = string(b[i])
	}
	return s, err
}

func TestReadBack(t *testing.T) {
	objs := open(t, writeFile(t, sample()))
	var paths []string
	for p := range objs {
		paths = append(paths, p)
	}
	for _, want := range []string{"/obs", "/obs/sub/deeper", "/ünï/s", "/obs/_index", "/obs/bool", "/" + strings.Repeat("n", 300)} {
		if objs[want] == nil {
			t.Fatalf("no %s in %v", want, paths)
		}
	}
	numbers := []struct {
		path string
		want []float64
	}{
		{"/obs/f32", []float64{1.5, -2}},
		{"/obs/f64", []float64{1, 2, 3, 4, 5, 6}},
		{"/obs/scalar", []float64{0.287604}},
		{"/obs/i8", []float64{-1, 2}},
		{"/obs/i16", []float64{-300, 2}},
		{"/obs/i32", []float64{-70000, 2}},
		{"/obs/i64", []float64{-1 << 40, 2}},
	}
	for _, tt := range numbers {
		got, err := objs[tt.path].(*hdf5.Dataset).Read()
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s = %v (%v), want %v", tt.path, got, err, tt.want)
		}
	}
	if got, err := readStrings(objs["/obs/_index"]); err != nil || !reflect.DeepEqual(got, []string{"x", "", "yy", "héllo"}) {
		t.Errorf("_index = %q (%v)", got, err)
	}
	attrs := []struct {
		path, name string
		want       any
	}{
		{"", "encoding-type", "anndata"},
		{"/obs", "column-order", []string{"a", "bb", ""}},
		{"/obs", "shape", []int64{3, 2}},
		{"/obs/i8", "n", int64(5)},
		{"/obs/sub/deeper", "x", 1.5},
	}
	for _, tt := range attrs {
		var (
			got any
			err error
		)
		switch o := objs[tt.path].(type) {
		case *hdf5.Dataset:
			got, err = o.ReadAttribute(tt.name)
		case *hdf5.Group:
			as, e := o.Attributes()
			err = e
			for _, a := range as {
				if a.Name == tt.name {
					got, err = a.ReadValue()
				}
			}
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s@%s = %#v (%v), want %#v", tt.path, tt.name, got, err, tt.want)
		}
	}
}

// TestManyStrings spreads strings over several heap collections (more
// objects and bytes than one collection takes, one string larger than a
// collection) and reads them back.
func TestManyStrings(t *testing.T) {
	s := make([]string, 20000)
	for i := range s {
		s[i] = fmt.Sprintf("s%d", i)
	}
	s[3] = ""
	s[10000] = strings.Repeat("long", 30000)
	f := New()
	f.Root().Dataset("s", s)
	p := writeFile(t, f)
	got, err := readStrings(open(t, p)["/s"])
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("read %d strings (%v), want %d", len(got), err, len(s))
	}
	b, _ := os.ReadFile(p)
	if n := bytes.Count(b, []byte("GCOL\x01")); n < 3 {
		t.Errorf("%d heap collections, want several", n)
	}
}

func TestDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if _, err := sample().WriteTo(&a); err != nil {
		t.Fatal(err)
	}
	if _, err := sample().WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Error("two writes of the same tree differ")
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name  string
		build func(f *File)
		want  string
	}{
		{"unsupported type", func(f *File) { f.Root().Dataset("d", []uint16{1}) }, "/d: unsupported data type []uint16"},
		{"unsupported attribute", func(f *File) { f.Root().Attr("a", map[string]int{}) }, `/: attribute "a": unsupported data type`},
		{"shape mismatch", func(f *File) { f.Root().Dataset("d", []float64{1, 2, 3}, 2, 2) }, "shape [2 2] holds 4 elements but the data has 3"},
		{"negative dim", func(f *File) { f.Root().Dataset("d", []float64{}, -1, 0) }, "invalid shape [-1 0]"},
		{"scalar with shape", func(f *File) { f.Root().Dataset("d", 1.0, 1) }, "cannot have shape"},
		{"duplicate child", func(f *File) { f.Root().Group("g"); f.Root().Dataset("g", []int8{1}) }, `/: child "g" created twice`},
		{"slash", func(f *File) { f.Root().Group("a/b") }, `child name "a/b" contains '/'`},
		{"empty name", func(f *File) { f.Root().Group("x").Group("") }, `/x: invalid child name ""`},
		{"duplicate attribute", func(f *File) { f.Root().Group("x").Attr("a", 1.0).Attr("a", 2.0) }, `/x: attribute "a" set twice`},
		{"empty attribute name", func(f *File) { f.Root().Attr("", 1.0) }, "empty attribute name"},
		{"attribute too large", func(f *File) { f.Root().Group("g").Attr("big", make([]int64, 9000)) }, `/g: attribute "big" needs 72`},
		{"first error kept", func(f *File) {
			f.Root().Group("a/b")
			f.Root().Dataset("d", []uint16{1})
		}, "contains '/'"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New()
			tt.build(f)
			var buf bytes.Buffer
			_, err := f.WriteTo(&buf)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one saying %q", err, tt.want)
			}
			if buf.Len() != 0 {
				t.Errorf("wrote %d bytes despite the error", buf.Len())
			}
		})
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		k := w.n
		w.n = 0
		return k, errors.New("disk full")
	}
	w.n -= len(p)
	return len(p), nil
}

func TestWriteError(t *testing.T) {
	for _, n := range []int{0, 10, 100, 1000} {
		if _, err := sample().WriteTo(&failWriter{n}); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Errorf("after %d bytes: %v", n, err)
		}
	}
}

// TestH5dump has libhdf5's h5dump parse the sample file, when installed.
func TestH5dump(t *testing.T) {
	h5dump, err := exec.LookPath("h5dump")
	if err != nil {
		t.Skip("h5dump not installed (apt-get install hdf5-tools)")
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(h5dump, writeFile(t, sample()))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("h5dump: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		`(0): -300, 2`, `(0): -1099511627776, 2`, `(0): 1.5, -2`, `(2,0): 5, 6`, `(0): 0.287604`,
		`(0): TRUE, FALSE, TRUE`, `(0): "x", "", "yy"`, `(0): "a", "bb", ""`, `(0): "scalar string"`,
		`CSET H5T_CSET_UTF8`, `GROUP "` + strings.Repeat("n", 300) + `"`, `DATASPACE  SCALAR`, `DATASPACE  SIMPLE { ( 0 ) / ( 0 ) }`, `(0): FALSE`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("h5dump output lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(out)
	}
}
