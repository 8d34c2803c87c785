package gguf

import (
	"bytes"
	"io"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
)

type runtimeStats struct{ bytes uint64 }

// measure records the bytes allocated while f runs.
func (s *runtimeStats) measure(f func()) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	s.bytes = after.TotalAlloc - before.TotalAlloc
}

// TestOpenDoesNotCopyTensors opens a 16 MiB model: the heap grows by the metadata only,
// and an F32 tensor is returned as a view of the mapping.
func TestOpenDoesNotCopyTensors(t *testing.T) {
	const rows, cols = 2048, 2048
	path := filepath.Join(t.TempDir(), "big.gguf")
	w := NewWriter()
	row := make([]byte, 4*cols)
	err := w.AddTensorFunc("big", F32, []uint64{cols, rows}, func(out io.Writer) error {
		for range rows {
			if _, err := out.Write(row); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var ws runtimeStats
	ws.measure(func() { err = w.WriteFile(path) })
	if err != nil {
		t.Fatal(err)
	}
	if ws.bytes > 8<<20 {
		t.Errorf("streaming a 16 MiB tensor to disk allocated %d bytes", ws.bytes)
	}
	var f *File
	var s runtimeStats
	s.measure(func() { f, err = Open(path) })
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, _ := f.Tensor("big")
	var data []float32
	var s2 runtimeStats
	s2.measure(func() { data, err = f.Float32(ti) })
	if err != nil || len(data) != rows*cols {
		t.Fatalf("Float32: %d elements, %v", len(data), err)
	}
	if s.bytes > 1<<20 || s2.bytes > 1<<20 {
		t.Errorf("Open allocated %d bytes and Float32 %d for a 16 MiB tensor, want the metadata only", s.bytes, s2.bytes)
	}
}

// TestFloat32Parallel converts a tensor large enough to be split across CPUs and compares
// it with one sequential Dequantize, bit for bit, at several GOMAXPROCS.
func TestFloat32Parallel(t *testing.T) {
	const n = parallelMin + 3*256 // not a multiple of the chunking
	data := make([]byte, n/256*144)
	for i := range data {
		data[i] = byte(i*7 + i>>9)
	}
	w := NewWriter()
	if err := w.AddTensor("q", Q4_K, []uint64{256, n / 256}, data); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	want := make([]float32, n)
	if err := Dequantize(Q4_K, data, want); err != nil {
		t.Fatal(err)
	}
	ti, _ := f.Tensor("q")
	for _, procs := range []int{1, 2, 3, 8} {
		prev := runtime.GOMAXPROCS(procs)
		got, err := f.Float32(ti)
		runtime.GOMAXPROCS(prev)
		if err != nil {
			t.Fatal(err)
		}
		compareBits(t, "GOMAXPROCS="+strconv.Itoa(procs), want, got)
	}
}
