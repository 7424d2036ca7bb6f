package h5write

// Encoders for the HDF5 structures we write. Section numbers refer to the
// HDF5 File Format Specification Version 3.0. All integers are
// little-endian; offsets and lengths are 8 bytes.

import (
	"encoding/binary"
	"unicode/utf8"
)

// undef is the "undefined address" (all bits set).
const undef = ^uint64(0)

var le = binary.LittleEndian

// signature opens every HDF5 file (II.A).
const signature = "\x89HDF\r\n\x1a\n"

// superblockSize is the size of a version-2 superblock with 8-byte
// offsets and lengths.
const superblockSize = 48

// superblock encodes a version-2 superblock (II.A): signature, version 2,
// sizes of offsets and lengths, file consistency flags, base address,
// superblock extension address (none), end-of-file address, root group
// object header address, checksum.
func superblock(eof, root uint64) []byte {
	b := make([]byte, 0, superblockSize)
	b = append(b, signature...)
	b = append(b, 2, 8, 8, 0)
	b = le.AppendUint64(b, 0)
	b = le.AppendUint64(b, undef)
	b = le.AppendUint64(b, eof)
	b = le.AppendUint64(b, root)
	return le.AppendUint32(b, lookup3(b))
}

// Object header message types (IV.A.2).
const (
	msgDataspace = 0x01
	msgLinkInfo  = 0x02
	msgDatatype  = 0x03
	msgFill      = 0x05
	msgLink      = 0x06
	msgLayout    = 0x08
	msgGroupInfo = 0x0a
	msgAttribute = 0x0c
)

// message is one header message: its type, flags and encoded body.
type message struct {
	typ   uint8
	flags uint8 // bit 0: constant
	body  []byte
}

// objectHeader encodes a version-2 object header (IV.A.1.b) with a single
// chunk: "OHDR", version 2, flags (bits 0–1 = 2: the chunk size takes 4
// bytes; no times, no attribute phase change values), chunk size, the
// messages (type, 2-byte size, flags, body), checksum.
func objectHeader(msgs []message) []byte {
	size := 0
	for _, m := range msgs {
		size += 4 + len(m.body)
	}
	b := make([]byte, 0, 10+size+4)
	b = append(b, "OHDR"...)
	b = append(b, 2, 0x02)
	b = le.AppendUint32(b, uint32(size))
	for _, m := range msgs {
		b = append(b, m.typ)
		b = le.AppendUint16(b, uint16(len(m.body)))
		b = append(b, m.flags)
		b = append(b, m.body...)
	}
	return le.AppendUint32(b, lookup3(b))
}

// maxMessage is the largest message body a 2-byte size field can describe.
const maxMessage = 0xffff

// linkInfo is a Link Info message (IV.A.2.c): version 0, no creation order,
// no fractal heap and no name index (all links are compact Link messages).
func linkInfo() message {
	b := []byte{0, 0}
	b = le.AppendUint64(b, undef)
	b = le.AppendUint64(b, undef)
	return message{typ: msgLinkInfo, body: b}
}

// groupInfo is a Group Info message (IV.A.2.k): version 0, default
// compact/dense thresholds.
func groupInfo() message {
	return message{typ: msgGroupInfo, flags: 1, body: []byte{0, 0}}
}

// link is a Link message (IV.A.2.g) for a hard link name → addr: version
// 1; flags bits 0–1 give the size of the name-length field, bit 4 says a
// character set byte (1 = UTF-8) follows.
func link(name string, addr uint64) message {
	b := []byte{1, 0}
	if !ascii(name) {
		b[1] |= 0x10
	}
	if len(name) > 0xff {
		b[1] |= 0x01
	}
	if b[1]&0x10 != 0 {
		b = append(b, 1)
	}
	if len(name) > 0xff {
		b = le.AppendUint16(b, uint16(len(name)))
	} else {
		b = append(b, byte(len(name)))
	}
	b = append(b, name...)
	return message{typ: msgLink, body: le.AppendUint64(b, addr)}
}

// dataspace encodes a Dataspace message (IV.A.2.b), version 2: scalar when
// dims is nil, else simple with the current sizes and no maximum sizes.
func dataspace(dims []int) []byte {
	if dims == nil {
		return []byte{2, 0, 0, 0}
	}
	b := []byte{2, byte(len(dims)), 0, 1}
	for _, d := range dims {
		b = le.AppendUint64(b, uint64(d))
	}
	return b
}

// datatype encodes a Datatype message (IV.A.2.d) for k, as libhdf5 writes
// the native little-endian types (version 1 everywhere).
func datatype(k kind) []byte {
	switch k {
	case kInt8, kInt16, kInt32, kInt64:
		return fixedPoint(k.size(), true)
	case kFloat32:
		return ieeeFloat(4, 31, 23, 8, 23, 127)
	case kFloat64:
		return ieeeFloat(8, 63, 52, 11, 52, 1023)
	case kBool:
		// Enumeration (class 8) of 2 members over int8: names
		// null-terminated and padded to 8 bytes, then the values.
		b := []byte{0x18, 2, 0, 0}
		b = le.AppendUint32(b, 1)
		b = append(b, fixedPoint(1, true)...)
		b = append(b, "FALSE\x00\x00\x00TRUE\x00\x00\x00\x00"...)
		return append(b, 0, 1)
	case kString:
		// Variable-length (class 9) of type string (bits 0–3 = 1),
		// null-terminated padding (bits 4–7 = 0), UTF-8 (bits 8–11 = 1);
		// the base type is an unsigned byte, as in libhdf5.
		b := []byte{0x19, 0x01, 0x01, 0}
		b = le.AppendUint32(b, 16)
		return append(b, fixedPoint(1, false)...)
	}
	panic("h5write: unknown kind") // unreachable: newValue only makes known kinds
}

// fixedPoint encodes a little-endian integer type of size bytes: class 0,
// version 1, bit 3 = signed; bit offset 0, precision 8*size.
func fixedPoint(size int, signed bool) []byte {
	b := []byte{0x10, 0, 0, 0}
	if signed {
		b[1] = 0x08
	}
	b = le.AppendUint32(b, uint32(size))
	b = le.AppendUint16(b, 0)
	return le.AppendUint16(b, uint16(8*size))
}

// ieeeFloat encodes a little-endian IEEE float: class 1, version 1,
// mantissa normalisation 2 (implied leading 1), sign bit position; bit
// offset, precision, exponent location and size, mantissa location and
// size, exponent bias.
func ieeeFloat(size int, sign, expLoc, expSize, mantSize byte, bias uint32) []byte {
	b := []byte{0x11, 0x20, sign, 0}
	b = le.AppendUint32(b, uint32(size))
	b = le.AppendUint16(b, 0)
	b = le.AppendUint16(b, uint16(8*size))
	b = append(b, expLoc, expSize, 0, mantSize)
	return le.AppendUint32(b, bias)
}

// fillValue is a Fill Value message (IV.A.2.f), version 3, with space
// allocation time "late" and no fill value defined, as libhdf5 writes for
// contiguous datasets.
func fillValue() message { return message{typ: msgFill, flags: 1, body: []byte{3, 2}} }

// contiguousLayout is a Data Layout message (IV.A.2.i), version 3, class 1
// (contiguous): address and size of the raw data.
func contiguousLayout(addr uint64, size int) message {
	if size == 0 {
		addr = undef
	}
	b := []byte{3, 1}
	b = le.AppendUint64(b, addr)
	return message{typ: msgLayout, body: le.AppendUint64(b, uint64(size))}
}

// attributeMessage encodes an Attribute message (IV.A.2.m), version 3:
// name (null-terminated, with its character set), datatype, dataspace and
// the data.
func attributeMessage(name string, v *value) []byte {
	dt, ds := datatype(v.kind), dataspace(v.dims)
	b := []byte{3, 0}
	b = le.AppendUint16(b, uint16(len(name)+1))
	b = le.AppendUint16(b, uint16(len(dt)))
	b = le.AppendUint16(b, uint16(len(ds)))
	if ascii(name) {
		b = append(b, 0)
	} else {
		b = append(b, 1)
	}
	b = append(b, name...)
	b = append(b, 0)
	b = append(b, dt...)
	b = append(b, ds...)
	return v.appendData(b, 0, v.len())
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
