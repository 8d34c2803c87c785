package ref

import (
	"math"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// TestRecomputeBitIdentical recomputes every stage of every layer at several positions from
// the reference's own input rows: each operation taken alone must give the normal run's
// row bit for bit, on the reference and on the candidate (each recomputing its own rows).
func TestRecomputeBitIdentical(t *testing.T) {
	m := randomModel(testConfig, 3)
	tokens := randomTokens(70, testConfig.Vocab, 6)
	for _, eng := range []struct {
		name string
		new  func(*engine.Model) (*Engine, error)
	}{{"cpu", New}, {"cpu-f64acc", NewF64Acc}} {
		t.Run(eng.name, func(t *testing.T) {
			run := captureWith(t, eng.new, m, tokens, golden.RoutePrefill)
			e, err := eng.new(&m.Model)
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			checked := 0
			for k, want := range run {
				if k.stage == golden.EmbedOut || (k.pos != 0 && k.pos != 63 && k.pos != 64 && k.pos != 69) {
					continue
				}
				var in [][]float32
				for _, need := range Inputs(k.stage, k.layer, k.pos) {
					from := need.Pos
					if need.Prefix {
						from = 0
					}
					var row []float32
					for p := from; p <= need.Pos; p++ {
						row = append(row, run[rowKey{need.Stage, need.Layer, p}]...)
					}
					in = append(in, row)
				}
				got := make([]float32, e.Width(k.stage))
				if err := e.Recompute(got, k.stage, k.layer, k.pos, in); err != nil {
					t.Fatalf("%v: %v", k, err)
				}
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%v element %d: recomputed %v, run %v", k, i, got[i], want[i])
					}
				}
				checked++
			}
			if want := 4 * ((golden.NumStages-2)*m.Config.NLayer + 1); checked != want {
				t.Errorf("%d rows recomputed, want %d", checked, want)
			}
		})
	}
}

func TestRecomputeRejectsBadInput(t *testing.T) {
	m := randomModel(testConfig, 1)
	e, err := New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	dim, qd, kvd := testConfig.Dim, e.qDim, e.kvDim
	row := func(n int) []float32 { return make([]float32, n) }
	tests := []struct {
		name       string
		st         golden.Stage
		layer, pos int
		out        []float32
		in         [][]float32
		want       string
	}{
		{"embed_out", golden.EmbedOut, -1, 0, row(dim), nil, "embed_out is not computed from rows of other stages"},
		{"layer", golden.AttnIn, 3, 0, row(dim), [][]float32{row(dim)}, "layer 3 outside the model's 3 layers"},
		{"output row", golden.QPreRope, 0, 0, row(qd - 1), [][]float32{row(dim)}, "q_pre_rope: a row of 71 values, want 72"},
		{"inputs", golden.ResidualPostAttn, 0, 0, row(dim), [][]float32{row(dim)}, "1 input rows, want 2"},
		{"short input", golden.AttnOut, 1, 5, row(dim), [][]float32{row(qd - 1)},
			"recomputing attn_out layer 1 pos 5: input attn_ctx has 71 values, want 72"},
		{"keys of too few positions", golden.AttnCtx, 0, 5, row(qd), [][]float32{row(qd), row(5 * kvd), row(6 * kvd)},
			"input k_post_rope has 180 values, want 216"},
	}
	for _, tc := range tests {
		if err := e.Recompute(tc.out, tc.st, tc.layer, tc.pos, tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
