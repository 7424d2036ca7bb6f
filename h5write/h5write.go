// Package h5write writes the small subset of HDF5 that AnnData .h5ad files
// need: a tree of groups and datasets, each carrying attributes, with
// elements of type int8/16/32/64, float32/64, bool (h5py's enum) and
// variable-length UTF-8 strings. Datasets are stored contiguously and
// uncompressed; attributes are scalar or 1-D.
//
// A File is assembled in memory by the caller (the data slices are kept by
// reference, not copied) and written in one pass by WriteTo, which only
// needs an io.Writer: the file layout is computed before the first byte is
// written.
//
// On-disk format (HDF5 File Format Specification 3.0; structures libhdf5
// has read since 1.8; checked with libhdf5 1.10.8 through h5py 3.7, anndata
// 0.8 and h5dump, and with github.com/scigolib/hdf5):
//
//	superblock version 2 (8-byte offsets and lengths, Jenkins lookup3 checksum)
//	raw data of every dataset, contiguous, in tree order
//	global heap collections holding every variable-length string
//	version-2 object headers ("OHDR", checksummed), children before parents
//
// Groups are "new-style" compact groups: a Link Info and a Group Info
// message plus one Link message per child in the group's object header.
// Attributes are Attribute messages (version 3) in the object header, so an
// attribute's encoded size must stay below 64 KiB.
//
// Errors are sticky, like bufio.Writer's: building methods never fail
// visibly and return their receiver or the new object so calls chain; the
// first problem (bad name, duplicate name, unsupported type, shape that does
// not match the data) is kept and returned by Err and WriteTo.
package h5write

import (
	"fmt"
	"strings"
)

// File is an HDF5 file being assembled.
type File struct {
	root *Group
	err  error
}

// New starts an empty file with a root group.
func New() *File {
	f := &File{}
	f.root = &Group{node: node{f: f, path: "/"}}
	return f
}

// Root returns the root group "/".
func (f *File) Root() *Group { return f.root }

// Err returns the first error met while building the file, or nil.
func (f *File) Err() error { return f.err }

func (f *File) fail(format string, args ...any) {
	if f.err == nil {
		f.err = fmt.Errorf("h5write: "+format, args...)
	}
}

// node is what groups and datasets share: a path, attributes and, once
// the layout is done, the address of the object header.
type node struct {
	f     *File
	path  string
	attrs []attribute
	addr  uint64 // object header address, set by WriteTo
}

type attribute struct {
	name string
	val  *value
}

func (n *node) setAttr(name string, v any) {
	if n.f.err != nil {
		return
	}
	if name == "" {
		n.f.fail("%s: empty attribute name", n.path)
		return
	}
	for _, a := range n.attrs {
		if a.name == name {
			n.f.fail("%s: attribute %q set twice", n.path, name)
			return
		}
	}
	val, err := newValue(v, nil)
	if err != nil {
		n.f.fail("%s: attribute %q: %v", n.path, name, err)
		return
	}
	n.attrs = append(n.attrs, attribute{name, val})
}

// Group is an HDF5 group: named links to child groups and datasets.
type Group struct {
	node
	children []child
}

type child struct {
	name string
	obj  object
}

// object is a *Group or a *Dataset.
type object interface{ base() *node }

func (n *node) base() *node { return n }

// Attr sets attribute name to v: a scalar (int8, int16, int32, int64,
// float32, float64, bool, string) or a slice of one of them (a 1-D
// attribute). It returns g.
func (g *Group) Attr(name string, v any) *Group {
	g.setAttr(name, v)
	return g
}

// Group creates the child group name (one path component). After an
// error it returns a detached group so calls can go on; the error is kept.
func (g *Group) Group(name string) *Group {
	c := &Group{node: node{f: g.f, path: join(g.path, name)}}
	g.link(name, c)
	return c
}

// Dataset creates the child dataset name holding data, a slice of int8,
// int16, int32, int64, float32, float64, bool or string, or one such scalar
// (a scalar dataset). dims gives the shape in row-major order; without
// dims a slice is 1-D. The slice is kept, not copied: do not change it
// before WriteTo.
func (g *Group) Dataset(name string, data any, dims ...int) *Dataset {
	d := &Dataset{node: node{f: g.f, path: join(g.path, name)}}
	if g.f.err != nil {
		return d
	}
	val, err := newValue(data, dims)
	if err != nil {
		g.f.fail("%s: %v", d.path, err)
		return d
	}
	d.val = val
	g.link(name, d)
	return d
}

func (g *Group) link(name string, o object) {
	if g.f.err != nil {
		return
	}
	switch {
	case name == "" || name == "." || name == "..":
		g.f.fail("%s: invalid child name %q", g.path, name)
		return
	case strings.Contains(name, "/"):
		g.f.fail("%s: child name %q contains '/'", g.path, name)
		return
	case len(name) > 0xffff:
		g.f.fail("%s: child name of %d bytes is too long", g.path, len(name))
		return
	}
	for _, c := range g.children {
		if c.name == name {
			g.f.fail("%s: child %q created twice", g.path, name)
			return
		}
	}
	g.children = append(g.children, child{name, o})
}

func join(dir, name string) string {
	if dir == "/" {
		return "/" + name
	}
	return dir + "/" + name
}

// Dataset is an HDF5 dataset with contiguous storage.
type Dataset struct {
	node
	val      *value
	dataAddr uint64 // address of the raw data, set by WriteTo
}

// Attr sets attribute name to v (see Group.Attr) and returns d.
func (d *Dataset) Attr(name string, v any) *Dataset {
	d.setAttr(name, v)
	return d
}
