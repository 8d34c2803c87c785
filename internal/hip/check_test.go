package hip

import (
	"math"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/synth"
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
	return &model.Model{Model: engine.Model{Config: c, Weights: w}}
}

// qwen2Hand is handModel as a qwen2 model: NEOX RoPE and q, k, v biases.
func qwen2Hand() *model.Model {
	m := handModel()
	m.Config.Arch, m.Config.RopeStyle, m.Config.QKVBias = "qwen2", layout.RopeNeox, true
	for l := range m.Weights.Layers {
		L := &m.Weights.Layers[l]
		L.Bq, L.Bk, L.Bv = make([]float32, 8), make([]float32, 4), make([]float32, 4)
	}
	return m
}

// TestCheckModel: the backend runs what the kernels implement (both RoPE styles, frequency
// factors, linear scaling, biases, tied output) and refuses what model.Check refuses, and
// what its 32-bit indexing cannot address, before any device work.
func TestCheckModel(t *testing.T) {
	accepted := []struct {
		name string
		m    func() *model.Model
	}{
		{"llama", handModel},
		{"llama3 rope factors, linear scaling", func() *model.Model {
			m := handModel()
			m.Config.RopeFreqs, m.Weights.RopeFreqs, m.Config.RopeScale = true, []float32{1, 2}, 4
			return m
		}},
		{"qwen2", qwen2Hand},
	}
	for _, tc := range accepted {
		if err := checkModel(&tc.m().Model); err != nil {
			t.Errorf("checkModel(%s) = %v, want nil", tc.name, err)
		}
	}
	tests := []struct {
		name   string
		break_ func(m *model.Model)
		want   string
	}{
		{"key projection one head short", func(m *model.Model) {
			k := &m.Weights.Layers[1].Wk
			k.Name, k.Rows, k.Data = "blk.1.attn_k.weight", 2, k.Data[:16]
		}, `hip: model: tensor "blk.1.attn_k.weight": 2x8 with 16 values, the config wants 4x8`},
		{"no weights", func(m *model.Model) { m.Weights = nil }, "hip: model: no weights"},
		{"qwen2 without its biases", func(m *model.Model) {
			m.Config.Arch, m.Config.RopeStyle, m.Config.QKVBias = "qwen2", layout.RopeNeox, true
		}, `hip: model: tensor "blk.0.attn_q.bias": 0 values, the config wants 8`},
		{"a rope style of neither kind", func(m *model.Model) { m.Config.RopeStyle = 2 }, "rope style"},
		{"context beyond 32-bit indexing", func(m *model.Model) { m.Config.CtxLen = 1 << 28 },
			"hip: the FFN rows of the context holds 3221225472 elements, beyond 32-bit indexing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := handModel()
			tc.break_(m)
			err := checkModel(&m.Model)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkModel() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestIndexingFitsThePresets: the largest tensors of the full-size presets (Qwen2.5 0.5B's
// 151936 x 896 and Llama 3.2 1B's tied 128256 x 2048 embedding, Llama 3.2's 131072-position
// context) are within 32-bit indexing; one more token row past the limit is not.
func TestIndexingFitsThePresets(t *testing.T) {
	for _, p := range synth.Presets {
		c := model.Config{NLayer: p.NLayer, Dim: p.Dim, FFNDim: p.FFNDim, NHead: p.NHead, NHeadKV: p.NHeadKV,
			HeadDim: p.Dim / p.NHead, CtxLen: p.CtxLen, Vocab: p.Vocab}
		if err := checkIndexing(c); err != nil {
			t.Errorf("%s: %v", p.Name, err)
		}
	}
	c := model.Config{Dim: 2048, FFNDim: 8, NHead: 32, HeadDim: 64, CtxLen: 8, Vocab: math.MaxInt32/2048 + 1}
	if err := checkIndexing(c); err == nil || !strings.Contains(err.Error(), "token_embd holds 2147483648 elements") {
		t.Errorf("checkIndexing(vocab %d x 2048) = %v, want token_embd refused", c.Vocab, err)
	}
}

// TestRopeFreqs: the host gives the kernel the CPU reference's frequencies exactly when the
// model has frequency factors or linear scaling; otherwise the kernel computes
// base^(-2i/rope_dim) itself, as before (so plain llama models keep their device bits).
func TestRopeFreqs(t *testing.T) {
	if f := ropeFreqs(&handModel().Model); f != nil {
		t.Errorf("ropeFreqs(llama without factors) = %v, want nil", f)
	}
	if f := ropeFreqs(&qwen2Hand().Model); f != nil {
		t.Errorf("ropeFreqs(qwen2 without scaling) = %v, want nil", f)
	}
	m := handModel()
	m.Config.RopeFreqs, m.Weights.RopeFreqs = true, []float32{1, 8}
	want := []float64{1, math.Pow(10000, -0.5) / 8}
	got := ropeFreqs(&m.Model)
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-15, 0)); diff != "" {
		t.Errorf("ropeFreqs(factors 1, 8) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(ref.RopeFreq(m.Config, m.Weights.RopeFreqs), got); diff != "" {
		t.Errorf("ropeFreqs differs from the CPU reference's bits (-ref +got):\n%s", diff)
	}
	q := qwen2Hand()
	q.Config.RopeScale = 4
	if got := ropeFreqs(&q.Model); len(got) != 2 || got[0] != 0.25 {
		t.Errorf("ropeFreqs(qwen2, linear scale 4) = %v, want pair 0 at 1/4", got)
	}
}
