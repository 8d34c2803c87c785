package hip

import (
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/internal/model"
)

// handModel builds a consistent two-layer model by hand, with distinct values.
func handModel() *model.Model {
	c := model.Config{Arch: "llama", NLayer: 2, Dim: 8, FFNDim: 12, NHead: 2, NHeadKV: 1, HeadDim: 4, RopeDim: 4,
		RopeBase: 10000, Eps: 1e-5, CtxLen: 16, Vocab: 10}
	seq := 0
	mat := func(name string, rows, cols int) model.Matrix {
		d := make([]float32, rows*cols)
		for i := range d {
			seq++
			d[i] = float32(seq%17-8) / 16
		}
		return model.Matrix{Name: name, Rows: rows, Cols: cols, Data: d}
	}
	ones := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = 1
		}
		return v
	}
	w := &model.Weights{TokEmbd: mat("token_embd.weight", c.Vocab, c.Dim), OutNorm: ones(c.Dim)}
	w.Output = w.TokEmbd
	for range c.NLayer {
		w.Layers = append(w.Layers, model.Layer{
			AttnNorm: ones(c.Dim), FFNNorm: ones(c.Dim),
			Wq: mat("attn_q", 8, 8), Wk: mat("attn_k", 4, 8), Wv: mat("attn_v", 4, 8), Wo: mat("attn_output", 8, 8),
			WGate: mat("ffn_gate", 12, 8), WUp: mat("ffn_up", 12, 8), WDown: mat("ffn_down", 8, 12),
		})
	}
	return &model.Model{Config: c, Weights: w}
}

func TestCheckModelRefusesInconsistentWeights(t *testing.T) {
	if err := checkModel(handModel()); err != nil {
		t.Fatalf("checkModel(consistent model) = %v, want nil", err)
	}
	tests := []struct {
		name   string
		break_ func(m *model.Model)
		want   string
	}{
		{"key projection one head short", func(m *model.Model) {
			k := &m.Weights.Layers[1].Wk
			k.Name, k.Rows, k.Data = "blk.1.attn_k.weight", 2, k.Data[:16]
		}, `tensor "blk.1.attn_k.weight": 2x8 with 16 values, the config wants 4x8`},
		{"rows and data disagree", func(m *model.Model) {
			d := &m.Weights.Layers[0].WDown
			d.Name, d.Data = "blk.0.ffn_down.weight", d.Data[:len(d.Data)-1]
		}, `tensor "blk.0.ffn_down.weight": 8x12 with 95 values`},
		{"fewer layers than block_count", func(m *model.Model) { m.Config.NLayer = 3 }, "2 layers of weights, block_count 3"},
		{"short norm", func(m *model.Model) { m.Weights.Layers[1].FFNNorm = m.Weights.Layers[1].FFNNorm[:7] },
			`tensor "blk.1.ffn_norm.weight": 7 values, the config wants 8`},
		{"heads not grouped", func(m *model.Model) { m.Config.NHeadKV = 3 }, "head_count 2 is not a multiple of head_count_kv 3"},
		{"odd rope", func(m *model.Model) { m.Config.RopeDim = 3 }, "rope dimension 3 must be even"},
		{"vocabulary larger than the embedding", func(m *model.Model) { m.Config.Vocab = 11 },
			`tensor "token_embd.weight": 10x8 with 80 values, the config wants 11x8`},
		{"no weights", func(m *model.Model) { m.Weights = nil }, "model has no weights"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := handModel()
			tc.break_(m)
			err := checkModel(m)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkModel() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
