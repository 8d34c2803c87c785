package gguf

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
)

// Writer assembles a GGUF file from metadata pairs and tensors, kept in the order added.
// Tensor data is laid out in that order, each tensor at the next multiple of the alignment
// (general.alignment if added, else 32) and padded with zeros to it, as ggml writes files.
// A File written by Writer and read back by Parse compares equal, and FromFile of it writes
// the same bytes again.
type Writer struct {
	version   uint32
	alignment uint64
	kvs       []KV
	keys      map[string]bool
	tensors   []pending
	names     map[string]bool
}

type pending struct {
	info   TensorInfo
	data   []byte
	stream func(io.Writer) error
}

// NewWriter returns an empty version 3 Writer.
func NewWriter() *Writer {
	return &Writer{version: 3, alignment: DefaultAlignment, keys: map[string]bool{}, names: map[string]bool{}}
}

// FromFile returns a Writer holding f's version, metadata and tensors; tensor data aliases
// f's image, so f must stay open until the Writer has written.
func FromFile(f *File) (*Writer, error) {
	w := NewWriter()
	if err := w.SetVersion(f.Version); err != nil {
		return nil, err
	}
	for _, kv := range f.KVs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			return nil, err
		}
	}
	for i := range f.Tensors {
		t := &f.Tensors[i]
		if err := w.AddTensor(t.Name, t.Type, t.Dims, f.TensorData(t)); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// SetVersion selects GGUF version 2 or 3 (the default); they differ only in the version
// field.
func (w *Writer) SetVersion(v uint32) error {
	if v != 2 && v != 3 {
		return fmt.Errorf("gguf: writer: version %d, want 2 or 3", v)
	}
	w.version = v
	return nil
}

// AddKV appends a metadata pair. A duplicate key, a value that cannot be encoded, or a
// general.alignment that is not a uint32 power of two is refused.
func (w *Writer) AddKV(key string, v Value) error {
	if w.keys[key] {
		return fmt.Errorf("gguf: writer: key %q: duplicate key", key)
	}
	if _, err := appendValue(nil, v, 0); err != nil {
		return fmt.Errorf("gguf: writer: key %q: %w", key, err)
	}
	if key == KeyAlignment {
		if v.typ != ValueUint32 || v.num == 0 || v.num&(v.num-1) != 0 {
			return fmt.Errorf("gguf: writer: key %q: %s value %s, want a uint32 power of two", key, v.describe(), v)
		}
		w.alignment = v.num
	}
	w.keys[key] = true
	w.kvs = append(w.kvs, KV{Key: key, Value: v})
	return nil
}

// AddTensor appends a tensor whose data is held in memory; len(data) must be its exact
// size. dims are in GGUF order (dims[0] is the row length). data is kept, not copied.
func (w *Writer) AddTensor(name string, typ Type, dims []uint64, data []byte) error {
	info, err := w.check(name, typ, dims)
	if err != nil {
		return err
	}
	if uint64(len(data)) != info.Size {
		return fmt.Errorf("gguf: writer: tensor %q: %d bytes of data, want %d for %s %v", name, len(data), info.Size, typ, dims)
	}
	w.add(pending{info: info, data: data})
	return nil
}

// AddTensorFunc appends a tensor whose data write streams when the file is written, so
// that a file larger than memory can be produced. write must write exactly the tensor's
// size in bytes (Write fails otherwise).
func (w *Writer) AddTensorFunc(name string, typ Type, dims []uint64, write func(io.Writer) error) error {
	info, err := w.check(name, typ, dims)
	if err != nil {
		return err
	}
	w.add(pending{info: info, stream: write})
	return nil
}

func (w *Writer) add(p pending) {
	w.names[p.info.Name] = true
	w.tensors = append(w.tensors, p)
}

func (w *Writer) check(name string, typ Type, dims []uint64) (TensorInfo, error) {
	fail := func(format string, args ...any) (TensorInfo, error) {
		return TensorInfo{}, fmt.Errorf("gguf: writer: tensor %q: %s", name, fmt.Sprintf(format, args...))
	}
	switch {
	case name == "":
		return fail("empty name")
	case w.names[name]:
		return fail("duplicate tensor name")
	case len(dims) < 1 || len(dims) > maxDims:
		return fail("%d dims, want 1..%d", len(dims), maxDims)
	case !typ.Known():
		return fail("unknown ggml type %s", typ)
	}
	elems := uint64(1)
	for i, d := range dims {
		over, p := mul64(elems, d)
		if d == 0 || d > math.MaxInt64 || over || p > math.MaxInt64 {
			return fail("dims %v: dims[%d] = %d out of range or element count overflows", dims, i, d)
		}
		elems = p
	}
	if dims[0]%typ.BlockSize() != 0 {
		return fail("row length %d not a multiple of the %s block size %d", dims[0], typ, typ.BlockSize())
	}
	size, err := typ.RowBytes(elems)
	if err != nil {
		return fail("%v", err)
	}
	return TensorInfo{Name: name, Dims: append([]uint64(nil), dims...), Type: typ, Size: size}, nil
}

func (w *Writer) alignUp(n uint64) uint64 { return (n + w.alignment - 1) &^ (w.alignment - 1) }

// Write writes the file to out.
func (w *Writer) Write(out io.Writer) error {
	bw := bufio.NewWriterSize(out, 1<<20)
	hdr := []byte(Magic)
	hdr = le.AppendUint32(hdr, w.version)
	hdr = le.AppendUint64(hdr, uint64(len(w.tensors)))
	hdr = le.AppendUint64(hdr, uint64(len(w.kvs)))
	for _, kv := range w.kvs {
		hdr = appendString(hdr, kv.Key)
		hdr = le.AppendUint32(hdr, uint32(kv.Value.typ))
		var err error
		if hdr, err = appendValue(hdr, kv.Value, 0); err != nil {
			return fmt.Errorf("gguf: writer: key %q: %w", kv.Key, err) // AddKV checked it; kept for safety
		}
	}
	var off uint64
	for i := range w.tensors {
		t := &w.tensors[i].info
		t.Offset = off
		off = w.alignUp(off + t.Size)
		hdr = appendString(hdr, t.Name)
		hdr = le.AppendUint32(hdr, uint32(len(t.Dims)))
		for _, d := range t.Dims {
			hdr = le.AppendUint64(hdr, d)
		}
		hdr = le.AppendUint32(hdr, uint32(t.Type))
		hdr = le.AppendUint64(hdr, t.Offset)
	}
	if _, err := bw.Write(hdr); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	if len(w.tensors) > 0 {
		if err := writeZeros(bw, w.alignUp(uint64(len(hdr)))-uint64(len(hdr))); err != nil {
			return err
		}
	}
	for i := range w.tensors {
		p := &w.tensors[i]
		if err := p.writeData(bw); err != nil {
			return err
		}
		if err := writeZeros(bw, w.alignUp(p.info.Size)-p.info.Size); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	return nil
}

var zeros [4096]byte

// writeZeros writes n bytes of padding; an alignment may be up to 2^31, so the padding is
// written in pieces rather than allocated.
func writeZeros(w io.Writer, n uint64) error {
	for n > 0 {
		k := min(n, uint64(len(zeros)))
		if _, err := w.Write(zeros[:k]); err != nil {
			return fmt.Errorf("gguf: writer: %w", err)
		}
		n -= k
	}
	return nil
}

func (p *pending) writeData(w io.Writer) error {
	if p.stream == nil {
		if _, err := w.Write(p.data); err != nil {
			return fmt.Errorf("gguf: writer: tensor %q: %w", p.info.Name, err)
		}
		return nil
	}
	cw := &limitedWriter{w: w, left: p.info.Size}
	if err := p.stream(cw); err != nil {
		return fmt.Errorf("gguf: writer: tensor %q: %w", p.info.Name, err)
	}
	if cw.left != 0 {
		return fmt.Errorf("gguf: writer: tensor %q: data function wrote %d bytes, want %d", p.info.Name, p.info.Size-cw.left, p.info.Size)
	}
	return nil
}

var errTooMuch = errors.New("data function wrote more bytes than the tensor holds")

// limitedWriter refuses to let a tensor's data function write past the tensor's size.
type limitedWriter struct {
	w    io.Writer
	left uint64
}

func (l *limitedWriter) Write(b []byte) (int, error) {
	if uint64(len(b)) > l.left {
		return 0, errTooMuch
	}
	n, err := l.w.Write(b)
	l.left -= uint64(n)
	return n, err
}

// WriteFile writes the file to path atomically: into a temporary file in the same folder,
// synced, then renamed over path, so a reader never sees a half-written model.
func (w *Writer) WriteFile(path string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if err = w.Write(tmp); err != nil {
		return err
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	if err = tmp.Sync(); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("gguf: writer: %w", err)
	}
	return nil
}
