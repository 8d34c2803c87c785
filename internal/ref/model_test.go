package ref

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

// testConfig is a small Llama with grouped KV heads, a partial rotary dimension, and rows
// whose lengths are not multiples of 16, so the kernels' tails run too.
var testConfig = model.Config{
	Arch: "llama", NLayer: 3, Dim: 72, FFNDim: 100, NHead: 4, NHeadKV: 2, HeadDim: 18,
	RopeDim: 12, RopeBase: 10000, Eps: 1e-5, CtxLen: 160, Vocab: 101,
}

// qwenConfig has Qwen2.5-0.5B's head geometry, 14 query heads and 2 KV heads of 64 (so its
// width, 896), with two layers, a small FFN whose rows are not multiples of 16, and a small
// vocabulary: NEOX RoPE, q/k/v biases, tied output.
var qwenConfig = model.Config{
	Arch: "qwen2", NLayer: 2, Dim: 896, FFNDim: 136, NHead: 14, NHeadKV: 2, HeadDim: 64, RopeDim: 64,
	RopeBase: 1e6, RopeStyle: layout.RopeNeox, QKVBias: true, Eps: 1e-6, CtxLen: 160, Vocab: 101, TiedOutput: true,
}

// qwenOddConfig is testConfig as qwen2: NEOX RoPE over a partial rotary dimension (12 of
// 18), biases, untied.
var qwenOddConfig = model.Config{
	Arch: "qwen2", NLayer: 3, Dim: 72, FFNDim: 100, NHead: 4, NHeadKV: 2, HeadDim: 18, RopeDim: 12,
	RopeBase: 10000, RopeStyle: layout.RopeNeox, QKVBias: true, Eps: 1e-5, CtxLen: 160, Vocab: 101,
}

// llama3Config is a llama with Llama 3.2's 4:1 head grouping at odd sizes (8 heads of 9, a
// rotary dimension of 8), RoPE frequency factors, linear scaling on top, and tied output.
var llama3Config = model.Config{
	Arch: "llama", NLayer: 3, Dim: 72, FFNDim: 100, NHead: 8, NHeadKV: 2, HeadDim: 9, RopeDim: 8,
	RopeBase: 500000, RopeScale: 2, RopeFreqs: true, Eps: 1e-5, CtxLen: 160, Vocab: 101, TiedOutput: true,
}

// randomModel fills a model of configuration c with reproducible random weights: uniform in
// +-1/sqrt(fan-in), norms around 1, so activations keep a realistic scale through the layers;
// biases uniform in +-0.5 and RoPE frequency factors in [1, 32] when c has them.
func randomModel(c model.Config, seed uint64) *model.Model {
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	mat := func(name string, rows, cols int) model.Matrix {
		d := make([]float32, rows*cols)
		s := float32(1 / math.Sqrt(float64(cols)))
		for i := range d {
			d[i] = float32(2*rng.Float32()-1) * s
		}
		return model.Matrix{Name: name, Rows: rows, Cols: cols, Data: d}
	}
	norm := func() []float32 {
		v := make([]float32, c.Dim)
		for i := range v {
			v[i] = 0.5 + rng.Float32()
		}
		return v
	}
	// Extras are drawn only for the configurations that have them, so the weights of the
	// others (and the determinism digests) stay as they were.
	uniform := func(n int, lo, hi float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = lo + (hi-lo)*rng.Float32()
		}
		return v
	}
	w := &model.Weights{TokEmbd: mat("token_embd.weight", c.Vocab, c.Dim), OutNorm: norm()}
	if c.TiedOutput {
		w.Output = w.TokEmbd
	} else {
		w.Output = mat("output.weight", c.Vocab, c.Dim)
	}
	if c.RopeFreqs {
		w.RopeFreqs = uniform(c.RopeDim/2, 1, 32)
	}
	for l := range c.NLayer {
		p := func(s string) string { return fmt.Sprintf("blk.%d.%s.weight", l, s) }
		w.Layers = append(w.Layers, model.Layer{
			AttnNorm: norm(),
			Wq:       mat(p("attn_q"), c.NHead*c.HeadDim, c.Dim),
			Wk:       mat(p("attn_k"), c.NHeadKV*c.HeadDim, c.Dim),
			Wv:       mat(p("attn_v"), c.NHeadKV*c.HeadDim, c.Dim),
			Wo:       mat(p("attn_output"), c.Dim, c.NHead*c.HeadDim),
			FFNNorm:  norm(),
			WGate:    mat(p("ffn_gate"), c.FFNDim, c.Dim),
			WUp:      mat(p("ffn_up"), c.FFNDim, c.Dim),
			WDown:    mat(p("ffn_down"), c.Dim, c.FFNDim),
		})
		if c.QKVBias {
			L := &w.Layers[l]
			L.Bq, L.Bk, L.Bv = uniform(c.NHead*c.HeadDim, -0.5, 0.5), uniform(c.NHeadKV*c.HeadDim, -0.5, 0.5), uniform(c.NHeadKV*c.HeadDim, -0.5, 0.5)
		}
	}
	return &model.Model{Model: engine.Model{Config: c, Weights: w}}
}

// randomTokens returns n reproducible token ids starting with 1 (BOS).
func randomTokens(n, vocab int, seed uint64) []int32 {
	rng := rand.New(rand.NewPCG(seed, 1))
	t := make([]int32, n)
	t[0] = 1
	for i := 1; i < n; i++ {
		t[i] = int32(rng.IntN(vocab))
	}
	return t
}
