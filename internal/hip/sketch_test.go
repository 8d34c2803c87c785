//go:build rocm

package hip

import (
	"maps"
	"math"
	"slices"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// TestDeviceSketches: every sketch the device computes for the default plan's rows, faults
// applied, equals golden.NewSketch of the row copied back, bit for bit, at every traced width.
func TestDeviceSketches(t *testing.T) {
	for name, m := range testModels(t) {
		t.Run(name, func(t *testing.T) {
			e := openGPU(t, m)
			c := m.Config
			p := standardPrompts(t, m)[1]
			n := len(p.Tokens)
			widths := map[int]int{} // rows checked by width
			var mu sync.Mutex
			plain := 0
			tap := &engine.Tap{
				Sel: trace.DefaultPlan().Resolve(c.NLayer, n),
				Faults: []engine.Fault{
					{Stage: golden.AttnOut, Layer: 1, PosMin: 0, PosMax: -1, Scale: 1.5, Add: 0.25},
					{Stage: golden.Logits, PosMin: n - 1, PosMax: n - 1, Scale: 1, Add: 1},
				},
				Sink: func(golden.Stage, int, int, []float32) { plain++ },
				SketchSink: func(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch) {
					mu.Lock() // SketchSink runs on several goroutines
					widths[len(row)]++
					mu.Unlock()
					if sk == nil {
						t.Errorf("%s layer %d pos %d: no sketch", st, layer, pos)
						return
					}
					if diff := cmp.Diff(sketchBits(golden.NewSketch(row)), sketchBits(sk)); diff != "" {
						t.Errorf("%s layer %d pos %d (width %d): device sketch differs from the CPU's (-cpu +device):\n%s",
							st, layer, pos, len(row), diff)
					}
				},
			}
			if _, err := e.Forward(p.Tokens, 0, tap); err != nil {
				t.Fatal(err)
			}
			if plain != 0 {
				t.Errorf("%d rows went to Sink without their sketch", plain)
			}
			got := slices.Sorted(maps.Keys(widths))
			want := slices.Compact(slices.Sorted(slices.Values([]int{c.Dim, e.qDim, e.kvDim, c.Vocab})))
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("traced widths (-want +got):\n%s (rows by width %v)", diff, widths)
			}
		})
	}
}

// sketchBits are a sketch's numbers as bits, so NaN compares equal to itself.
func sketchBits(s *golden.Sketch) []uint64 {
	b := []uint64{uint64(s.Version), uint64(s.N), math.Float64bits(s.L2), math.Float64bits(s.L1)}
	for _, p := range s.Proj {
		b = append(b, math.Float64bits(p))
	}
	return b
}
