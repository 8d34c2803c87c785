package gguf

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strconv"
)

// Magic is the first four bytes of every GGUF file.
const Magic = "GGUF"

// DefaultAlignment is the data alignment of a file without general.alignment.
const DefaultAlignment = 32

// KeyAlignment is the metadata key that overrides the data alignment.
const KeyAlignment = "general.alignment"

// maxDims is ggml's GGML_MAX_DIMS.
const maxDims = 4

// tensorCountOffset is where the tensor count is stored.
const tensorCountOffset = 8

// Fewest bytes a kv pair (key length, type, a one-byte value) and a tensor info (name
// length, n_dims, one dim, type, offset) occupy: counts are checked against them before
// anything is allocated.
const (
	minKVBytes         = 8 + 4 + 1
	minTensorInfoBytes = 8 + 4 + 8 + 4 + 8
)

// parser decodes a GGUF image. Every read checks the bytes left first.
type parser struct {
	b   []byte
	off uint64
}

func (p *parser) left() uint64 { return uint64(len(p.b)) - p.off }

func (p *parser) fail(off uint64, subject, format string, args ...any) *FormatError {
	return &FormatError{Subject: subject, Msg: fmt.Sprintf(format, args...), Offset: off}
}

func (p *parser) truncated(subject, field string, need uint64) *FormatError {
	return &FormatError{Subject: subject, Offset: p.off, Err: ErrTruncated,
		Msg: fmt.Sprintf("%s truncated: need %d bytes, %d left in file of size %d", field, need, p.left(), len(p.b))}
}

func (p *parser) u32(subject, field string) (uint32, error) {
	if p.left() < 4 {
		return 0, p.truncated(subject, field, 4)
	}
	v := le.Uint32(p.b[p.off:])
	p.off += 4
	return v, nil
}

func (p *parser) u64(subject, field string) (uint64, error) {
	if p.left() < 8 {
		return 0, p.truncated(subject, field, 8)
	}
	v := le.Uint64(p.b[p.off:])
	p.off += 8
	return v, nil
}

// str reads a length-prefixed string; the bytes are copied so the File outlives data.
func (p *parser) str(subject, field string) (string, error) {
	start := p.off
	n, err := p.u64(subject, field+" length")
	if err != nil {
		return "", err
	}
	if n > p.left() {
		return "", p.fail(start, subject, "%s length %d past end of file (%d bytes left, size %d)", field, n, p.left(), len(p.b))
	}
	s := string(p.b[p.off : p.off+n])
	p.off += n
	return s, nil
}

// Parse decodes and validates a GGUF image. Tensor data is not copied: the File's tensor
// slices alias data, which must stay unchanged while the File is used.
func Parse(data []byte) (*File, error) {
	p := &parser{b: data}
	f := &File{Alignment: DefaultAlignment, data: data}
	if err := p.header(f); err != nil {
		return nil, err
	}
	nTensors, nKV, err := p.counts()
	if err != nil {
		return nil, err
	}
	if err := p.kvs(f, nKV); err != nil {
		return nil, err
	}
	infoOffs, err := p.tensorInfos(f, nTensors)
	if err != nil {
		return nil, err
	}
	if err := p.dataSection(f, infoOffs); err != nil {
		return nil, err
	}
	return f, nil
}

func (p *parser) header(f *File) error {
	if p.left() < 4 {
		return p.truncated("header", "magic", 4)
	}
	if m := string(p.b[:4]); m != Magic {
		e := p.fail(0, "header", "bad magic %q, want %q", m, Magic)
		e.Err = ErrNotGGUF
		return e
	}
	p.off = 4
	v, err := p.u32("header", "version")
	if err != nil {
		return err
	}
	switch v {
	case 2, 3:
		f.Version = v
		return nil
	case 1:
		e := p.fail(4, "header", "version 1 is not supported (it used 32-bit counts; convert the file again)")
		e.Err = ErrUnsupportedVersion
		return e
	}
	if sw := bits.ReverseBytes32(v); sw == 2 || sw == 3 {
		e := p.fail(4, "header", "big-endian GGUF version %d is not supported", sw)
		e.Err = ErrUnsupportedVersion
		return e
	}
	e := p.fail(4, "header", "unsupported version %d, want 2 or 3", v)
	e.Err = ErrUnsupportedVersion
	return e
}

func (p *parser) counts() (nTensors, nKV uint64, err error) {
	if nTensors, err = p.u64("header", "tensor count"); err != nil {
		return 0, 0, err
	}
	kOff := p.off
	if nKV, err = p.u64("header", "kv count"); err != nil {
		return 0, 0, err
	}
	if left := p.left(); nKV > left/minKVBytes {
		return 0, 0, p.fail(kOff, "header", "kv count %d too large: %d bytes left hold at most %d", nKV, left, left/minKVBytes)
	}
	return nTensors, nKV, nil
}

func (p *parser) kvs(f *File, n uint64) error {
	f.KVs = make([]KV, 0, n)
	f.kvIndex = make(map[string]int, n)
	for i := range n {
		keyOff := p.off
		key, err := p.str("kv "+strconv.FormatUint(i, 10), "key")
		if err != nil {
			return err
		}
		subject := "key " + strconv.Quote(key)
		if _, dup := f.kvIndex[key]; dup {
			return p.fail(keyOff, subject, "duplicate key")
		}
		typOff := p.off
		t, err := p.u32(subject, "value type")
		if err != nil {
			return err
		}
		if !ValueType(t).Known() {
			return p.fail(typOff, subject, "unknown value type %d", t)
		}
		valOff := p.off
		v, err := p.value(ValueType(t), subject, 0)
		if err != nil {
			return err
		}
		if key == KeyAlignment {
			if v.typ != ValueUint32 {
				return p.fail(typOff, subject, "alignment of type %s, want uint32", v.describe())
			}
			if a := v.num; a == 0 || a&(a-1) != 0 {
				return p.fail(valOff, subject, "alignment %d is not a power of two", a)
			}
			f.Alignment = v.num
		}
		f.kvIndex[key] = len(f.KVs)
		f.KVs = append(f.KVs, KV{Key: key, Value: v})
	}
	return nil
}

func (p *parser) value(t ValueType, subject string, depth int) (Value, error) {
	switch t {
	case ValueString:
		s, err := p.str(subject, "string value")
		return Value{typ: t, str: s}, err
	case ValueArray:
		return p.array(subject, depth)
	}
	n := valueSizes[t]
	if p.left() < n {
		return Value{}, p.truncated(subject, t.String()+" value", n)
	}
	var num uint64
	switch n {
	case 1:
		num = uint64(p.b[p.off])
	case 2:
		num = uint64(le.Uint16(p.b[p.off:]))
	case 4:
		num = uint64(le.Uint32(p.b[p.off:]))
	default:
		num = le.Uint64(p.b[p.off:])
	}
	if t == ValueBool && num > 1 {
		return Value{}, p.fail(p.off, subject, "bool value %d, want 0 or 1", num)
	}
	p.off += n
	return Value{typ: t, num: num}, nil
}

func (p *parser) array(subject string, depth int) (Value, error) {
	if depth >= maxDepth {
		return Value{}, p.fail(p.off, subject, "arrays nested deeper than %d", maxDepth)
	}
	elemOff := p.off
	et, err := p.u32(subject, "array element type")
	if err != nil {
		return Value{}, err
	}
	elem := ValueType(et)
	if !elem.Known() {
		return Value{}, p.fail(elemOff, subject, "unknown array element type %d", et)
	}
	countOff := p.off
	n, err := p.u64(subject, "array length")
	if err != nil {
		return Value{}, err
	}
	if n > p.left()/elem.minSize() {
		return Value{}, p.fail(countOff, subject, "array length %d of %s past end of file (%d bytes left, size %d)", n, elem, p.left(), len(p.b))
	}
	v := Value{typ: ValueArray, elem: elem}
	b := p.b[p.off:]
	switch elem {
	case ValueUint8:
		v.arr = slices.Clone(b[:n])
	case ValueInt8:
		v.arr = decode(b, n, 1, func(b []byte) int8 { return int8(b[0]) })
	case ValueBool:
		for i := range n {
			if b[i] > 1 {
				return Value{}, p.fail(p.off+i, subject, "bool element %d value %d, want 0 or 1", i, b[i])
			}
		}
		v.arr = decode(b, n, 1, func(b []byte) bool { return b[0] == 1 })
	case ValueUint16:
		v.arr = decode(b, n, 2, le.Uint16)
	case ValueInt16:
		v.arr = decode(b, n, 2, func(b []byte) int16 { return int16(le.Uint16(b)) })
	case ValueUint32:
		v.arr = decode(b, n, 4, le.Uint32)
	case ValueInt32:
		v.arr = decode(b, n, 4, func(b []byte) int32 { return int32(le.Uint32(b)) })
	case ValueFloat32:
		v.arr = decode(b, n, 4, func(b []byte) float32 { return math.Float32frombits(le.Uint32(b)) })
	case ValueUint64:
		v.arr = decode(b, n, 8, le.Uint64)
	case ValueInt64:
		v.arr = decode(b, n, 8, func(b []byte) int64 { return int64(le.Uint64(b)) })
	case ValueFloat64:
		v.arr = decode(b, n, 8, func(b []byte) float64 { return math.Float64frombits(le.Uint64(b)) })
	case ValueString:
		a, err := p.strings(subject, n)
		if err != nil {
			return Value{}, err
		}
		v.arr = a
		return v, nil
	case ValueArray:
		a := make([]Value, n)
		for i := range a {
			if a[i], err = p.array(subject, depth+1); err != nil {
				return Value{}, err
			}
		}
		v.arr = a
		return v, nil
	}
	p.off += n * valueSizes[elem]
	return v, nil
}

// strings reads n length-prefixed strings. A vocabulary holds tens of thousands, so they
// are validated first and then sliced out of one copy of their bytes: one allocation
// instead of one per string.
func (p *parser) strings(subject string, n uint64) ([]string, error) {
	start := p.off
	for i := range n {
		if p.left() < 8 {
			return nil, p.truncated(subject, "string element "+strconv.FormatUint(i, 10)+" length", 8)
		}
		l := le.Uint64(p.b[p.off:])
		if l > p.left()-8 {
			return nil, p.fail(p.off, subject, "string element %d length %d past end of file (%d bytes left, size %d)", i, l, p.left()-8, len(p.b))
		}
		p.off += 8 + l
	}
	region := string(p.b[start:p.off])
	out := make([]string, n)
	off := uint64(0)
	for i := range out {
		l := le.Uint64(p.b[start+off:])
		out[i] = region[off+8 : off+8+l]
		off += 8 + l
	}
	return out, nil
}

// decode reads n fixed-size elements; the caller has checked that n*size bytes are there.
func decode[T any](b []byte, n, size uint64, get func([]byte) T) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = get(b[uint64(i)*size:])
	}
	return out
}

// tensorInfos reads the tensor infos and returns, per tensor, the byte offset of its data
// offset field (for errors found later).
func (p *parser) tensorInfos(f *File, n uint64) ([]uint64, error) {
	// Checked here rather than with the kv count so that a file truncated in its
	// metadata is reported where it ends.
	if left := p.left(); n > left/minTensorInfoBytes {
		return nil, p.fail(tensorCountOffset, "header", "tensor count %d too large: the %d bytes left after the metadata hold at most %d", n, left, left/minTensorInfoBytes)
	}
	f.Tensors = make([]TensorInfo, n)
	f.tensorIndex = make(map[string]int, n)
	offs := make([]uint64, n)
	for i := range f.Tensors {
		t := &f.Tensors[i]
		nameOff := p.off
		name, err := p.str("tensor "+strconv.Itoa(i), "name")
		if err != nil {
			return nil, err
		}
		subject := "tensor " + strconv.Quote(name)
		if name == "" {
			return nil, p.fail(nameOff, "tensor "+strconv.Itoa(i), "empty name")
		}
		if _, dup := f.tensorIndex[name]; dup {
			return nil, p.fail(nameOff, subject, "duplicate tensor name")
		}
		f.tensorIndex[name] = i
		t.Name = name
		ndOff := p.off
		nd, err := p.u32(subject, "n_dims")
		if err != nil {
			return nil, err
		}
		if nd < 1 || nd > maxDims {
			return nil, p.fail(ndOff, subject, "n_dims %d out of range 1..%d", nd, maxDims)
		}
		t.Dims = make([]uint64, nd)
		elems := uint64(1)
		for d := range t.Dims {
			dOff := p.off
			if t.Dims[d], err = p.u64(subject, fmt.Sprintf("dims[%d]", d)); err != nil {
				return nil, err
			}
			if t.Dims[d] == 0 || t.Dims[d] > math.MaxInt64 {
				return nil, p.fail(dOff, subject, "dims[%d] = %d out of range 1..2^63-1", d, t.Dims[d])
			}
			over, prod := mul64(elems, t.Dims[d])
			if over || prod > math.MaxInt64 {
				return nil, p.fail(dOff, subject, "element count overflows at dims[%d] = %d (dims %v)", d, t.Dims[d], t.Dims[:d+1])
			}
			elems = prod
		}
		typOff := p.off
		typ, err := p.u32(subject, "type")
		if err != nil {
			return nil, err
		}
		t.Type = Type(typ)
		if !t.Type.Known() {
			return nil, p.fail(typOff, subject, "unknown ggml type %d", typ)
		}
		if t.Dims[0]%t.Type.BlockSize() != 0 {
			return nil, p.fail(typOff, subject, "row length dims[0] = %d is not a multiple of the %s block size %d", t.Dims[0], t.Type, t.Type.BlockSize())
		}
		var over bool
		over, t.Size = mul64(elems/t.Type.BlockSize(), t.Type.TypeSize())
		if over {
			return nil, p.fail(typOff, subject, "byte size of %d %s elements overflows", elems, t.Type)
		}
		offs[i] = p.off
		if t.Offset, err = p.u64(subject, "data offset"); err != nil {
			return nil, err
		}
	}
	return offs, nil
}

// dataSection places the aligned data section and checks every tensor's data lies inside
// the file, aligned and without overlap.
func (p *parser) dataSection(f *File, infoOffs []uint64) error {
	size := uint64(len(p.b))
	f.DataOffset = (p.off + f.Alignment - 1) &^ (f.Alignment - 1)
	if len(f.Tensors) == 0 {
		return nil // a metadata-only file may end without padding
	}
	if f.DataOffset > size {
		return &FormatError{Subject: "padding", Offset: p.off, Err: ErrTruncated,
			Msg: fmt.Sprintf("truncated: data section starts at byte %d, past end of file (size %d)", f.DataOffset, size)}
	}
	avail := size - f.DataOffset
	for i := range f.Tensors {
		t := &f.Tensors[i]
		subject := "tensor " + strconv.Quote(t.Name)
		if t.Offset%f.Alignment != 0 {
			return p.fail(infoOffs[i], subject, "data offset %d not a multiple of the alignment %d", t.Offset, f.Alignment)
		}
		if t.Offset > avail || t.Size > avail-t.Offset {
			return p.fail(infoOffs[i], subject, "data offset %d + size %d past end of file (size %d, data section from byte %d)", t.Offset, t.Size, size, f.DataOffset)
		}
	}
	order := make([]int, len(f.Tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		oa, ob := f.Tensors[a].Offset, f.Tensors[b].Offset
		if oa != ob {
			if oa < ob {
				return -1
			}
			return 1
		}
		return a - b
	})
	for k := 1; k < len(order); k++ {
		a, b := &f.Tensors[order[k-1]], &f.Tensors[order[k]]
		if a.Offset+a.Size > b.Offset {
			return p.fail(infoOffs[order[k]], "tensor "+strconv.Quote(b.Name), "data offset %d overlaps tensor %q (offset %d, size %d)", b.Offset, a.Name, a.Offset, a.Size)
		}
	}
	return nil
}
