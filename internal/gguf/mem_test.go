package gguf

import (
	"io"
	"path/filepath"
	"runtime"
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
