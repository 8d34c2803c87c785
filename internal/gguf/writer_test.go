package gguf

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriterRefuses(t *testing.T) {
	w := NewWriter()
	if err := w.AddKV("k", ValueOf(uint8(1))); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("t", F32, []uint64{2}, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"duplicate key", w.AddKV("k", ValueOf("x")), `key "k": duplicate key`},
		{"alignment not a power of two", w.AddKV(KeyAlignment, ValueOf(uint32(24))), `key "general.alignment": uint32 value 24, want a uint32 power of two`},
		{"alignment of the wrong type", w.AddKV(KeyAlignment, ValueOf(uint64(32))), `uint64 value 32, want a uint32 power of two`},
		{"nested array holding a scalar", w.AddKV("n", NestedArray([]Value{ValueOf(int8(1))})), `key "n": element 0 of a nested array is a int8, want array`},
		{"duplicate tensor", w.AddTensor("t", F32, []uint64{2}, make([]byte, 8)), `tensor "t": duplicate tensor name`},
		{"empty name", w.AddTensor("", F32, []uint64{2}, make([]byte, 8)), `tensor "": empty name`},
		{"five dims", w.AddTensor("u", F32, []uint64{1, 1, 1, 1, 1}, make([]byte, 4)), `tensor "u": 5 dims, want 1..4`},
		{"zero dim", w.AddTensor("u", F32, []uint64{2, 0}, nil), `tensor "u": dims [2 0]: dims[1] = 0 out of range`},
		{"overflowing dims", w.AddTensor("u", F32, []uint64{1 << 40, 1 << 40}, nil), `dims[1] = 1099511627776 out of range or element count overflows`},
		{"unknown type", w.AddTensor("u", Type(5), []uint64{2}, nil), `tensor "u": unknown ggml type type(5)`},
		{"partial block", w.AddTensor("u", Q8_0, []uint64{16}, make([]byte, 17)), `tensor "u": row length 16 not a multiple of the Q8_0 block size 32`},
		{"wrong data length", w.AddTensor("u", Q8_0, []uint64{32}, make([]byte, 33)), `tensor "u": 33 bytes of data, want 34 for Q8_0 [32]`},
		{"version 1", w.SetVersion(1), "version 1, want 2 or 3"},
	}
	for _, c := range cases {
		if c.err == nil || !strings.Contains(c.err.Error(), c.want) {
			t.Errorf("%s: error %v, want it to contain %q", c.name, c.err, c.want)
		}
	}
	// Refused additions leave the Writer as it was.
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	if len(f.KVs) != 1 || len(f.Tensors) != 1 || f.Alignment != DefaultAlignment {
		t.Errorf("after refusals: %d keys, %d tensors, alignment %d; want 1, 1, 32", len(f.KVs), len(f.Tensors), f.Alignment)
	}
}

func TestWriterStreams(t *testing.T) {
	cases := []struct {
		name  string
		write func(io.Writer) error
		want  string
	}{
		{"short", func(w io.Writer) error { _, err := w.Write(make([]byte, 7)); return err }, `tensor "s": data function wrote 7 bytes, want 8`},
		{"long", func(w io.Writer) error { _, err := w.Write(make([]byte, 9)); return err }, `tensor "s": data function wrote more bytes than the tensor holds`},
		{"failing", func(io.Writer) error { return errors.New("disk on fire") }, `tensor "s": disk on fire`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := NewWriter()
			if err := w.AddTensorFunc("s", F32, []uint64{2}, c.write); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "out.gguf")
			err := w.WriteFile(path)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("WriteFile: %v, want an error containing %q", err, c.want)
			}
			// Nothing is left behind: neither the target nor the temporary file.
			if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 0 {
				t.Errorf("failed WriteFile left %v", entries)
			}
		})
	}
}

func TestWriterAlignment(t *testing.T) {
	w := NewWriter()
	if err := w.AddKV(KeyAlignment, ValueOf(uint32(256))); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"x", "y"} {
		if err := w.AddTensor(name, F16, []uint64{3}, []byte{1, 2, 3, 4, 5, 6}); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	y, _ := f.Tensor("y")
	if f.Alignment != 256 || f.DataOffset != 256 || y.Offset != 256 || buf.Len() != 256+512 {
		t.Errorf("alignment %d, data at %d, y at %d, %d bytes; want 256, 256, 256, 768", f.Alignment, f.DataOffset, y.Offset, buf.Len())
	}
	if got := f.TensorData(y); !bytes.Equal(got, []byte{1, 2, 3, 4, 5, 6}) {
		t.Errorf("y data %v", got)
	}
}

func TestWriterHugeAlignment(t *testing.T) {
	// A metadata-only file may declare the largest alignment; re-writing it must not
	// allocate padding it never writes.
	w := NewWriter()
	if err := w.AddKV(KeyAlignment, ValueOf(uint32(1<<31))); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil || f.Alignment != 1<<31 {
		t.Fatalf("Parse: alignment %v, %v", f, err)
	}
	var ms runtimeStats
	ms.measure(func() {
		w2, _ := FromFile(f)
		_ = w2.Write(io.Discard)
	})
	if ms.bytes > 4<<20 {
		t.Errorf("re-writing allocated %d bytes, want under 4 MiB", ms.bytes)
	}
}
