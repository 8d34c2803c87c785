package gguf

import (
	"bytes"
	"errors"
	"maps"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// raw builds a GGUF image field by field, remembering where each named field starts, so
// that corruption cases can patch a field and know the offset the error must report.
type raw struct {
	b  []byte
	at map[string]int
}

func (r *raw) mark(name string) {
	if name != "" {
		r.at[name] = len(r.b)
	}
}
func (r *raw) u8(name string, v uint8)   { r.mark(name); r.b = append(r.b, v) }
func (r *raw) u32(name string, v uint32) { r.mark(name); r.b = le.AppendUint32(r.b, v) }
func (r *raw) u64(name string, v uint64) { r.mark(name); r.b = le.AppendUint64(r.b, v) }
func (r *raw) str(name, s string)        { r.u64(name, uint64(len(s))); r.b = append(r.b, s...) }

func (r *raw) put32(name string, v uint32) { le.PutUint32(r.b[r.at[name]:], v) }
func (r *raw) put64(name string, v uint64) { le.PutUint64(r.b[r.at[name]:], v) }

func (r *raw) clone() *raw {
	return &raw{b: bytes.Clone(r.b), at: maps.Clone(r.at)}
}

// baseImage is a valid v3 file: five keys (a string, general.alignment = 32, an array of
// strings, a nested array, a bool) and two tensors, "a" (F32 [4 2], 32 bytes at data offset
// 0) and "b" (Q8_0 [32], 34 bytes at data offset 32).
func baseImage() *raw {
	r := &raw{at: map[string]int{}}
	r.mark("magic")
	r.b = append(r.b, "GGUF"...)
	r.u32("version", 3)
	r.u64("n_tensors", 2)
	r.u64("n_kv", 5)

	r.str("kv0.key", "general.architecture")
	r.u32("kv0.type", uint32(ValueString))
	r.str("kv0.value", "llama")

	r.str("kv1.key", KeyAlignment)
	r.u32("kv1.type", uint32(ValueUint32))
	r.u32("kv1.value", 32)

	r.str("kv2.key", "tokens")
	r.u32("kv2.type", uint32(ValueArray))
	r.u32("kv2.elem", uint32(ValueString))
	r.u64("kv2.count", 2)
	r.str("kv2.s0", "a")
	r.str("kv2.s1", "bc")

	r.str("kv3.key", "nested")
	r.u32("kv3.type", uint32(ValueArray))
	r.u32("kv3.elem", uint32(ValueArray))
	r.u64("kv3.count", 2)
	r.u32("kv3.inner0.elem", uint32(ValueUint8))
	r.u64("kv3.inner0.count", 1)
	r.u8("", 7)
	r.u32("kv3.inner1.elem", uint32(ValueInt32))
	r.u64("kv3.inner1.count", 0)

	r.str("kv4.key", "flag")
	r.u32("kv4.type", uint32(ValueBool))
	r.u8("kv4.value", 1)

	r.str("t0.name", "a")
	r.u32("t0.ndims", 2)
	r.u64("t0.dim0", 4)
	r.u64("t0.dim1", 2)
	r.u32("t0.type", uint32(F32))
	r.u64("t0.offset", 0)

	r.str("t1.name", "b")
	r.u32("t1.ndims", 1)
	r.u64("t1.dim0", 32)
	r.u32("t1.type", uint32(Q8_0))
	r.u64("t1.offset", 32)

	r.mark("infos.end")
	for len(r.b)%32 != 0 {
		r.b = append(r.b, 0)
	}
	r.mark("data")
	for i := range 32 + 34 {
		r.b = append(r.b, byte(i))
	}
	r.b = append(r.b, make([]byte, 30)...) // pads b to the alignment, as writers do
	return r
}

func TestBaseImage(t *testing.T) {
	r := baseImage()
	f, err := Parse(r.b)
	if err != nil {
		t.Fatal(err)
	}
	// The hand-built image is exactly what the Writer produces for the same content.
	w, err := FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), r.b) {
		t.Errorf("Writer output (%d bytes) differs from the hand-built image", buf.Len())
	}
	if f.DataOffset != uint64(r.at["data"]) {
		t.Errorf("DataOffset %d, want %d", f.DataOffset, r.at["data"])
	}
	nested, _ := f.Get("nested")
	if nested.Len() != 2 || nested.Index(0).Len() != 1 || nested.Index(0).Index(0).Interface() != uint8(7) || nested.Index(1).ElemType() != ValueInt32 {
		t.Errorf("nested = %v", nested)
	}
}

// TestCorruptFiles refuses each corruption with its own error, naming the field and the
// byte offset, and never panics.
func TestCorruptFiles(t *testing.T) {
	cases := []struct {
		name    string
		corrupt func(r *raw)
		want    string // distinctive part of the message
		offset  func(r *raw) int
		is      error
	}{
		{"empty file", func(r *raw) { r.b = r.b[:0] }, "header: magic truncated: need 4 bytes, 0 left", at0, ErrTruncated},
		{"bad magic", func(r *raw) { copy(r.b, "GGML") }, `header: bad magic "GGML", want "GGUF"`, at0, ErrNotGGUF},
		{"version 1", func(r *raw) { r.put32("version", 1) }, "header: version 1 is not supported", at("version"), ErrUnsupportedVersion},
		{"version 4", func(r *raw) { r.put32("version", 4) }, "header: unsupported version 4, want 2 or 3", at("version"), ErrUnsupportedVersion},
		{"big-endian file", func(r *raw) { r.put32("version", 3<<24) }, "header: big-endian GGUF version 3 is not supported", at("version"), ErrUnsupportedVersion},
		{"truncated header", func(r *raw) { r.b = r.b[:20] }, "header: kv count truncated: need 8 bytes, 4 left", at("n_kv"), ErrTruncated},
		{"absurd kv count", func(r *raw) { r.put64("n_kv", 1<<60) }, "header: kv count 1152921504606846976 too large", at("n_kv"), nil},
		{"absurd tensor count", func(r *raw) { r.put64("n_tensors", 1<<40) }, "header: tensor count 1099511627776 too large", at("n_tensors"), nil},
		{"absurd key length", func(r *raw) { r.put64("kv0.key", 1<<62) }, "kv 0: key length 4611686018427387904 past end of file", at("kv0.key"), nil},
		{"truncated in kv section", func(r *raw) { r.b = r.b[:r.at["kv2.s1"]+9] }, `key "tokens": string element 1 length 2 past end of file (1 bytes left`, at("kv2.s1"), nil},
		{"truncated kv value", func(r *raw) { r.b = r.b[:r.at["kv1.value"]+2] }, `key "general.alignment": uint32 value truncated: need 4 bytes, 2 left`, at("kv1.value"), ErrTruncated},
		{"absurd array length", func(r *raw) { r.put64("kv2.count", 1<<59) }, `key "tokens": array length 576460752303423488 of string past end of file`, at("kv2.count"), nil},
		{"absurd string length", func(r *raw) { r.put64("kv0.value", math.MaxUint64) }, `key "general.architecture": string value length 18446744073709551615 past end of file`, at("kv0.value"), nil},
		{"unknown value type", func(r *raw) { r.put32("kv0.type", 13) }, `key "general.architecture": unknown value type 13`, at("kv0.type"), nil},
		{"unknown array element type", func(r *raw) { r.put32("kv3.inner1.elem", 99) }, `key "nested": unknown array element type 99`, at("kv3.inner1.elem"), nil},
		{"bool out of range", func(r *raw) { r.b[r.at["kv4.value"]] = 2 }, `key "flag": bool value 2, want 0 or 1`, at("kv4.value"), nil},
		{"duplicate key", func(r *raw) { copy(r.b[r.at["kv3.key"]+8:], "tokens") }, `key "tokens": duplicate key`, at("kv3.key"), nil},
		{"alignment not a power of two", func(r *raw) { r.put32("kv1.value", 48) }, `key "general.alignment": alignment 48 is not a power of two`, at("kv1.value"), nil},
		{"alignment zero", func(r *raw) { r.put32("kv1.value", 0) }, `key "general.alignment": alignment 0 is not a power of two`, at("kv1.value"), nil},
		{"alignment of the wrong type", func(r *raw) { r.put32("kv1.type", uint32(ValueInt32)) }, `key "general.alignment": alignment of type int32, want uint32`, at("kv1.type"), nil},
		{"truncated in tensor infos", func(r *raw) { r.b = r.b[:r.at["t1.offset"]+5] }, `tensor "b": data offset truncated: need 8 bytes, 5 left`, at("t1.offset"), ErrTruncated},
		{"tensor count beyond the infos", func(r *raw) { r.b = r.b[:r.at["t1.ndims"]] }, `header: tensor count 2 too large: the 50 bytes left after the metadata hold at most 1`, at("n_tensors"), nil},
		{"n_dims too big", func(r *raw) { r.put32("t0.ndims", 5) }, `tensor "a": n_dims 5 out of range 1..4`, at("t0.ndims"), nil},
		{"n_dims zero", func(r *raw) { r.put32("t1.ndims", 0) }, `tensor "b": n_dims 0 out of range 1..4`, at("t1.ndims"), nil},
		{"zero dim", func(r *raw) { r.put64("t0.dim1", 0) }, `tensor "a": dims[1] = 0 out of range`, at("t0.dim1"), nil},
		{"dim above int64", func(r *raw) { r.put64("t0.dim0", 1<<63) }, `tensor "a": dims[0] = 9223372036854775808 out of range`, at("t0.dim0"), nil},
		{"dims product overflow", func(r *raw) { r.put64("t0.dim0", 1<<32); r.put64("t0.dim1", 1<<31) }, `tensor "a": element count overflows at dims[1] = 2147483648`, at("t0.dim1"), nil},
		{"byte size overflow", func(r *raw) { r.put64("t0.dim0", 1<<31); r.put64("t0.dim1", 1<<31) }, `tensor "a": byte size of 4611686018427387904 F32 elements overflows`, at("t0.type"), nil},
		{"unknown ggml type", func(r *raw) { r.put32("t0.type", 4) }, `tensor "a": unknown ggml type 4`, at("t0.type"), nil},
		{"row not whole blocks", func(r *raw) { r.put64("t1.dim0", 16) }, `tensor "b": row length dims[0] = 16 is not a multiple of the Q8_0 block size 32`, at("t1.type"), nil},
		{"duplicate tensor name", func(r *raw) { r.b[r.at["t1.name"]+8] = 'a' }, `tensor "a": duplicate tensor name`, at("t1.name"), nil},
		{"misaligned offset", func(r *raw) { r.put64("t1.offset", 40) }, `tensor "b": data offset 40 not a multiple of the alignment 32`, at("t1.offset"), nil},
		{"offset past end", func(r *raw) { r.put64("t1.offset", 1<<40) }, `tensor "b": data offset 1099511627776 + size 34 past end of file`, at("t1.offset"), nil},
		{"offset near 2^64", func(r *raw) { r.put64("t1.offset", math.MaxUint64-31) }, `tensor "b": data offset 18446744073709551584 + size 34 past end of file`, at("t1.offset"), nil},
		{"overlapping tensors", func(r *raw) { r.put64("t1.offset", 0) }, `tensor "b": data offset 0 overlaps tensor "a" (offset 0, size 32)`, at("t1.offset"), nil},
		{"truncated in padding", func(r *raw) { r.b = r.b[:r.at["infos.end"]+3] }, "padding: truncated: data section starts at byte 320, past end of file", at("infos.end"), ErrTruncated},
		{"truncated in data", func(r *raw) { r.b = r.b[:r.at["data"]+50] }, `tensor "b": data offset 32 + size 34 past end of file (size 370`, at("t1.offset"), nil},
	}
	base := baseImage()
	if base.at["infos.end"] != 297 || base.at["data"] != 320 {
		t.Fatalf("base image layout changed (infos end %d, data %d): update the expected messages", base.at["infos.end"], base.at["data"])
	}
	seen := map[string]bool{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := base.clone()
			c.corrupt(r)
			f, err := Parse(r.b)
			if err == nil {
				t.Fatalf("Parse accepted the file (%d tensors)", len(f.Tensors))
			}
			fe, ok := errors.AsType[*FormatError](err)
			if !ok {
				t.Fatalf("error %v (%T), want a *FormatError", err, err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q, want it to contain %q", err, c.want)
			}
			if want := c.offset(r); fe.Offset != uint64(want) || !strings.HasSuffix(err.Error(), " at byte "+itoa(want)) {
				t.Errorf("error %q at offset %d, want offset %d", err, fe.Offset, want)
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
			if seen[err.Error()] {
				t.Errorf("error %q is not distinct from another case's", err)
			}
			seen[err.Error()] = true
		})
	}
}

func at0(*raw) int { return 0 }

func at(name string) func(r *raw) int {
	return func(r *raw) int {
		off, ok := r.at[name]
		if !ok {
			panic("no field " + name)
		}
		return off
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestDeepNesting(t *testing.T) {
	r := &raw{at: map[string]int{}}
	r.b = append(r.b, "GGUF"...)
	r.u32("", 3)
	r.u64("", 0)
	r.u64("", 1)
	r.str("", "deep")
	r.u32("", uint32(ValueArray))
	for i := range maxDepth + 1 {
		r.u32(itoa(i), uint32(ValueArray))
		r.u64("", 1)
	}
	r.b = append(r.b, make([]byte, 64)...)
	_, err := Parse(r.b)
	want := `key "deep": arrays nested deeper than 16 at byte ` + itoa(r.at[itoa(maxDepth)])
	if err == nil || err.Error() != "gguf: "+want {
		t.Errorf("error %v, want %q", err, "gguf: "+want)
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.gguf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open of a missing file: %v, want ErrNotExist", err)
	}
	path := filepath.Join(dir, "bad.gguf")
	r := baseImage()
	r.put32("t0.type", 4)
	if err := os.WriteFile(path, r.b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	want := "gguf: " + path + `: tensor "a": unknown ggml type 4 at byte ` + itoa(r.at["t0.type"])
	if err == nil || err.Error() != want {
		t.Errorf("Open: %v, want %q", err, want)
	}
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("Open of a folder: %v, want \"not a regular file\"", err)
	}
	empty := filepath.Join(dir, "empty.gguf")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(empty); !errors.Is(err, ErrTruncated) {
		t.Errorf("Open of an empty file: %v, want ErrTruncated", err)
	}
}
