package ref

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
)

// replayCapture replays layers lo..hi of a fresh engine (newE) from in, the residual rows
// entering layer lo at positions 0..n-1, on route, and returns every row it traces.
func replayCapture(t *testing.T, newE func(*engine.Model) (*Engine, error), m *model.Model, lo, hi int, in []float32,
	route string) map[rowKey][]float32 {
	t.Helper()
	dim := m.Config.Dim
	given := slices.Clone(in)
	rows := captureRoute(t, newE, m, len(in)/dim, route, func(e *Engine, pos0, n int, tap *engine.Tap) error {
		return e.Replay(lo, hi, pos0, in[pos0*dim:(pos0+n)*dim], tap)
	})
	if !slices.Equal(given, in) {
		t.Error("Replay modified its input rows")
	}
	return rows
}

// inputRows returns the rows entering layer lo in a captured run: residual_pre_attn, or for
// lo = n_layer the last layer's residual_post_mlp.
func inputRows(run map[rowKey][]float32, lo, nLayer, n int) []float32 {
	var out []float32
	for p := range n {
		k := rowKey{golden.ResidualPreAttn, lo, p}
		if lo == nLayer {
			k = rowKey{golden.ResidualPostMLP, nLayer - 1, p}
		}
		out = append(out, run[k]...)
	}
	return out
}

// TestReplayBitIdentical replays layers lo..hi of the reference, and of the float64
// candidate, on their own residual rows entering layer lo: every row of every stage of those
// layers (and the logits when hi = n_layer) must equal the normal run's, bit for bit, on
// both routes, with a prompt longer than one chunk.
func TestReplayBitIdentical(t *testing.T) {
	m := randomModel(testConfig, 1)
	nl := m.Config.NLayer
	tokens := randomTokens(70, testConfig.Vocab, 2)
	ranges := [][2]int{{0, 0}, {1, 1}, {1, 2}, {0, 2}, {2, 3}, {0, 3}, {3, 3}}
	for _, eng := range []struct {
		name string
		new  func(*engine.Model) (*Engine, error)
	}{{"cpu", New}, {"cpu-f64acc", NewF64Acc}} {
		for _, route := range []string{golden.RoutePrefill, golden.RouteDecode} {
			want := captureWith(t, eng.new, m, tokens, route)
			for _, r := range ranges {
				lo, hi := r[0], r[1]
				t.Run(fmt.Sprintf("%s/%s/%d-%d", eng.name, route, lo, hi), func(t *testing.T) {
					got := replayCapture(t, eng.new, m, lo, hi, inputRows(want, lo, nl, len(tokens)), route)
					perLayer := (golden.NumStages - 2) * (min(hi, nl-1) - lo + 1)
					if hi == nl {
						perLayer++
					}
					if len(got) != perLayer*len(tokens) {
						t.Fatalf("%d rows traced, want %d", len(got), perLayer*len(tokens))
					}
					for k, g := range got {
						w, ok := want[k]
						if !ok || k.layer < lo || k.stage == golden.EmbedOut {
							t.Fatalf("%v traced by a replay of layers %d..%d", k, lo, hi)
						}
						for i := range w {
							if math.Float32bits(g[i]) != math.Float32bits(w[i]) {
								t.Fatalf("%v element %d: replay %v, run %v", k, i, g[i], w[i])
							}
						}
					}
				})
			}
		}
	}
}

// TestReplayLeavesOtherLayers: a replay of layer 1 writes that layer's KV cache only.
func TestReplayLeavesOtherLayers(t *testing.T) {
	m := randomModel(testConfig, 4)
	e, err := New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	tokens := randomTokens(20, testConfig.Vocab, 5)
	if _, err := e.Forward(tokens, 0, nil); err != nil {
		t.Fatal(err)
	}
	kvLen := len(tokens) * e.kvDim
	before := func(l int) [2][]float32 {
		return [2][]float32{slices.Clone(e.keys[l][:kvLen]), slices.Clone(e.vals[l][:kvLen])}
	}
	l0, l1, l2 := before(0), before(1), before(2)
	rows := make([]float32, len(tokens)*m.Config.Dim)
	for i := range rows {
		rows[i] = float32(i%7) - 3
	}
	if err := e.Replay(1, 1, 0, rows, nil); err != nil {
		t.Fatal(err)
	}
	for l, b := range map[int][2][]float32{0: l0, 2: l2} {
		if !slices.Equal(b[0], e.keys[l][:kvLen]) || !slices.Equal(b[1], e.vals[l][:kvLen]) {
			t.Errorf("layer %d: the KV cache changed in a replay of layer 1", l)
		}
	}
	if slices.Equal(l1[0], e.keys[1][:kvLen]) {
		t.Error("layer 1: the replay left its KV cache as it was")
	}
}

func TestReplayRejectsBadCalls(t *testing.T) {
	m := randomModel(testConfig, 1)
	e, err := New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	row := make([]float32, testConfig.Dim)
	tests := []struct {
		name         string
		lo, hi, pos0 int
		rows         []float32
		want         string
	}{
		{"hi past logits", 0, 4, 0, row, "ref: replay of layers 0..4: want 0 <= lo <= hi <= 3 (n_layer)"},
		{"lo after hi", 2, 1, 0, row, "replay of layers 2..1: want 0 <= lo <= hi <= 3"},
		{"negative layer", -1, 0, 0, row, "replay of layers -1..0"},
		{"no rows", 0, 0, 0, nil, "replay of layers 0..0: no rows"},
		{"part of a row", 0, 0, 0, row[:70], "replay of layers 0..0: 70 values are not whole rows of 72"},
		{"past the context", 0, 0, 159, append(row, row...), "positions 159..160 outside the context length 160"},
		{"negative position", 0, 0, -1, row, "positions -1..-1 outside the context length 160"},
	}
	for _, tc := range tests {
		if err := e.Replay(tc.lo, tc.hi, tc.pos0, tc.rows, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
