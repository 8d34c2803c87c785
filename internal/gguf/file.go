// Package gguf reads, validates and writes GGUF files (versions 2 and 3) and dequantizes
// ggml tensor data to float32.
//
// Open memory-maps a file, so a multi-gigabyte model costs address space rather than
// heap, and validates every count, length, type, dimension and offset against the file size
// before trusting it. A malformed file is refused with one *FormatError naming the field,
// the key or tensor, and the byte offset.
package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// KV is one metadata pair.
type KV struct {
	Key   string
	Value Value
}

// TensorInfo describes one tensor. Dims are in GGUF order: Dims[0] is the row length (the
// fastest-varying dimension), so a matrix with R rows of C columns has Dims [C, R].
type TensorInfo struct {
	Name   string
	Dims   []uint64
	Type   Type
	Offset uint64 // byte offset of the data within the data section
	Size   uint64 // bytes of data
}

// NumElements returns the product of the dims.
func (t *TensorInfo) NumElements() uint64 {
	n := uint64(1)
	for _, d := range t.Dims {
		n *= d
	}
	return n
}

// File is a parsed GGUF file. Its metadata is copied out of the image; tensor data stays in
// the image (the memory map for Open) until Close.
type File struct {
	Version    uint32
	Alignment  uint64 // of the data section and of every tensor's offset
	DataOffset uint64 // byte offset of the data section in the file
	KVs        []KV
	Tensors    []TensorInfo

	data        []byte
	kvIndex     map[string]int
	tensorIndex map[string]int
	release     func() error
}

// Open maps and parses the file at path (see Parse). Close releases the mapping; tensor
// data obtained from the File must not be used after Close.
func Open(path string) (*File, error) {
	data, release, err := mapFile(path)
	if err != nil {
		return nil, err
	}
	f, err := Parse(data)
	if err != nil {
		release()
		if fe, ok := errors.AsType[*FormatError](err); ok {
			fe.Path = path
		}
		return nil, err
	}
	f.release = release
	return f, nil
}

// Close releases the memory map of a File from Open; it is a no-op for Parse's Files.
func (f *File) Close() error {
	if f.release == nil {
		return nil
	}
	err := f.release()
	f.release, f.data = nil, nil
	return err
}

// Size returns the byte size of the file image.
func (f *File) Size() uint64 { return uint64(len(f.data)) }

// Get returns the value of key.
func (f *File) Get(key string) (Value, bool) {
	i, ok := f.kvIndex[key]
	if !ok {
		return Value{}, false
	}
	return f.KVs[i].Value, true
}

// lookup returns key's value converted by conv; errors name the key and wrap ErrNotFound
// for a missing key.
func lookup[T any](f *File, key string, conv func(Value) (T, error)) (T, error) {
	var zero T
	v, ok := f.Get(key)
	if !ok {
		return zero, fmt.Errorf("gguf: key %q: %w", key, ErrNotFound)
	}
	x, err := conv(v)
	if err != nil {
		return zero, fmt.Errorf("gguf: key %q: %w", key, err)
	}
	return x, nil
}

// String returns a string value.
func (f *File) String(key string) (string, error) { return lookup(f, key, Value.AsString) }

// Uint returns any unsigned integer value, or a signed one that is not negative.
func (f *File) Uint(key string) (uint64, error) { return lookup(f, key, Value.AsUint) }

// Int returns any integer value that fits in an int64.
func (f *File) Int(key string) (int64, error) { return lookup(f, key, Value.AsInt) }

// Float returns a float32 or float64 value, or an integer as float64.
func (f *File) Float(key string) (float64, error) { return lookup(f, key, Value.AsFloat) }

// Bool returns a bool value.
func (f *File) Bool(key string) (bool, error) { return lookup(f, key, Value.AsBool) }

// Strings returns an array of strings.
func (f *File) Strings(key string) ([]string, error) { return lookup(f, key, Value.AsStrings) }

// Float32s returns an array of float32.
func (f *File) Float32s(key string) ([]float32, error) { return lookup(f, key, Value.AsFloat32s) }

// Int32s returns an array of any integer type as int32s (see Value.AsInt32s).
func (f *File) Int32s(key string) ([]int32, error) { return lookup(f, key, Value.AsInt32s) }

// Tensor returns the info of the tensor called name.
func (f *File) Tensor(name string) (*TensorInfo, bool) {
	i, ok := f.tensorIndex[name]
	if !ok {
		return nil, false
	}
	return &f.Tensors[i], true
}

// TensorData returns t's bytes, a slice of the file image (read-only for Open's Files). It
// returns nil if t does not lie inside the file (a TensorInfo from another File).
func (f *File) TensorData(t *TensorInfo) []byte {
	avail := uint64(len(f.data)) - min(f.DataOffset, uint64(len(f.data)))
	if t.Offset > avail || t.Size > avail-t.Offset {
		return nil
	}
	start := f.DataOffset + t.Offset
	return f.data[start : start+t.Size : start+t.Size]
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// Float32 returns t's elements as float32. An F32 tensor whose data is 4-byte aligned is
// returned without a copy on little-endian hosts: the slice aliases the file image and must
// not be written. Other types are dequantized into a new slice.
func (f *File) Float32(t *TensorInfo) ([]float32, error) {
	data := f.TensorData(t)
	if data == nil {
		return nil, fmt.Errorf("gguf: tensor %q: data offset %d + size %d outside the file", t.Name, t.Offset, t.Size)
	}
	n := t.NumElements()
	if n > math.MaxInt {
		return nil, fmt.Errorf("gguf: tensor %q: %d elements exceed the address space", t.Name, n)
	}
	if t.Type == F32 && littleEndian && uintptr(unsafe.Pointer(unsafe.SliceData(data)))%4 == 0 {
		return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(data))), n), nil
	}
	out := make([]float32, n)
	if err := dequantizeParallel(t.Type, data, out); err != nil {
		return nil, fmt.Errorf("gguf: tensor %q: %w", t.Name, err)
	}
	return out, nil
}

// parallelMin is the element count from which Float32 spreads a conversion over the CPUs.
const parallelMin = 1 << 20

// dequantizeParallel converts in chunks of whole blocks on GOMAXPROCS goroutines. Every
// block decodes independently of the others, so the result is the same bits as one
// sequential Dequantize, whatever the number of CPUs.
func dequantizeParallel(t Type, src []byte, dst []float32) error {
	workers := runtime.GOMAXPROCS(0)
	if len(dst) < parallelMin || workers < 2 {
		return Dequantize(t, src, dst)
	}
	ti, ok := t.info()
	if !ok || uint64(len(dst))%ti.block != 0 || uint64(len(src)) < uint64(len(dst))/ti.block*ti.size {
		return Dequantize(t, src, dst) // reports the error
	}
	blocks := len(dst) / int(ti.block)
	per := (blocks + workers - 1) / workers
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		lo, hi := min(w*per, blocks), min((w+1)*per, blocks)
		wg.Go(func() {
			errs[w] = Dequantize(t, src[lo*int(ti.size):hi*int(ti.size)], dst[lo*int(ti.block):hi*int(ti.block)])
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}
