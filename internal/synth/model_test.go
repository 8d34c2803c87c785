package synth_test

import (
	"fmt"
	"math"
	"slices"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/corpus"
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/synth"
)

// tinyPresets are the presets small enough to generate and run in every test run.
var tinyPresets = []synth.Preset{synth.Tiny, synth.TinyLlama3, synth.TinyQwen2}

type presetDType struct {
	preset string
	dt     synth.DType
}

// loaded caches the models of each tiny preset and dtype (seed 0) across the tests.
var loaded = map[presetDType]*model.Model{}

func load(t *testing.T, dt synth.DType) *model.Model { return loadPreset(t, synth.Tiny, dt) }

func loadPreset(t *testing.T, p synth.Preset, dt synth.DType) *model.Model {
	t.Helper()
	if m, ok := loaded[presetDType{p.Name, dt}]; ok {
		return m
	}
	img, err := synth.Generate(p, dt, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.FromFile(f, p.Name)
	if err != nil {
		t.Fatal(err)
	}
	loaded[presetDType{p.Name, dt}] = m
	return m
}

func moments(x []float32) (mean, std float64) {
	var s, sq float64
	for _, v := range x {
		s += float64(v)
	}
	mean = s / float64(len(x))
	for _, v := range x {
		d := float64(v) - mean
		sq += d * d
	}
	return mean, math.Sqrt(sq / float64(len(x)))
}

// The scaling rules of the package doc, restated: dim 256, ffn 768, 10 layers.
func TestTinyWeightStatistics(t *testing.T) {
	m := load(t, synth.F32)
	p := synth.Tiny
	c := m.Config
	if c.NLayer != 10 || c.Dim != 256 || c.NHead != 8 || c.NHeadKV != 2 || c.HeadDim != 32 || c.FFNDim != 768 ||
		c.CtxLen != 2048 || c.Vocab != synth.TinyVocab || c.RopeBase != 10000 || c.Eps != 1e-5 || c.TiedOutput {
		t.Fatalf("config %+v does not match the tiny preset %+v", c, p)
	}
	res := math.Sqrt(20)
	type check struct {
		name      string
		data      []float32
		mean, std float64
	}
	w := m.Weights
	checks := []check{
		{"token_embd", w.TokEmbd.Data, 0, 1},
		{"output", w.Output.Data, 0, 3 / 16.0},
		{"output_norm", w.OutNorm, 1, 0.1},
	}
	for l, ly := range w.Layers {
		for _, x := range []check{
			{"attn_norm", ly.AttnNorm, 1, 0.1},
			{"attn_q", ly.Wq.Data, 0, math.Sqrt(2.5 / 256)},
			{"attn_k", ly.Wk.Data, 0, math.Sqrt(2.5 / 256)},
			{"attn_v", ly.Wv.Data, 0, 1 / 16.0},
			{"attn_output", ly.Wo.Data, 0, 1 / 16.0 / res},
			{"ffn_norm", ly.FFNNorm, 1, 0.1},
			{"ffn_gate", ly.WGate.Data, 0, 1 / 16.0},
			{"ffn_up", ly.WUp.Data, 0, 1 / 16.0},
			{"ffn_down", ly.WDown.Data, 0, 1 / math.Sqrt(768) / res},
		} {
			x.name = fmt.Sprintf("blk.%d.%s", l, x.name)
			checks = append(checks, x)
		}
	}
	for _, x := range checks {
		mean, std := moments(x.data)
		// A 256-element norm vector estimates its std within about 10%; matrices far better.
		tol := 0.03
		if len(x.data) <= 256 {
			tol = 0.15
		}
		if math.Abs(std/x.std-1) > tol || math.Abs(mean-x.mean) > 4*x.std/math.Sqrt(float64(len(x.data))) {
			t.Errorf("%s: mean %.4f std %.5f, want %.4f and %.5f", x.name, mean, std, x.mean, x.std)
		}
		if x.mean == 1 && slicesMin(x.data) <= 0 {
			t.Errorf("%s: a norm weight is not positive", x.name)
		}
	}
}

// The family presets load with their family's settings: llama3 RoPE factors and tied
// embeddings for tiny-llama3; NEOX RoPE, q/k/v biases and tied embeddings for tiny-qwen2;
// each with the scaling rules of the package doc for biases and the tied output norm.
func TestFamilyPresets(t *testing.T) {
	llama3 := loadPreset(t, synth.TinyLlama3, synth.F32)
	c := llama3.Config
	want := model.Config{Arch: "llama", NLayer: 10, Dim: 256, FFNDim: 1024, NHead: 8, NHeadKV: 2, HeadDim: 32,
		RopeDim: 32, RopeBase: 500000, RopeStyle: layout.RopeNorm, RopeFreqs: true, Eps: 1e-5, CtxLen: 2048,
		Vocab: synth.TinyVocab, TiedOutput: true}
	if c != want {
		t.Errorf("tiny-llama3 config %+v, want %+v", c, want)
	}
	// Heads of 32: pair i has the wavelength 2 pi 500000^(i/16) (see TestLlama3RopeFactors).
	if f := llama3.Weights.RopeFreqs; len(f) != 16 || f[7] != 1 || math.Abs(float64(f[8])-3.2922621) > 1e-6 || f[9] != 32 || f[15] != 32 {
		t.Errorf("tiny-llama3 rope_freqs %v", f)
	}

	qwen := loadPreset(t, synth.TinyQwen2, synth.F32)
	c = qwen.Config
	want = model.Config{Arch: "qwen2", NLayer: 10, Dim: 448, FFNDim: 1216, NHead: 14, NHeadKV: 2, HeadDim: 32,
		RopeDim: 32, RopeBase: 1e6, RopeStyle: layout.RopeNeox, QKVBias: true, Eps: 1e-6, CtxLen: 2048,
		Vocab: synth.TinyVocab, TiedOutput: true}
	if c != want {
		t.Errorf("tiny-qwen2 config %+v, want %+v", c, want)
	}
	var bias []float32
	for _, L := range qwen.Weights.Layers {
		bias = append(append(append(bias, L.Bq...), L.Bk...), L.Bv...)
	}
	if mean, std := moments(bias); math.Abs(mean) > 0.01 || math.Abs(std/0.1-1) > 0.05 {
		t.Errorf("tiny-qwen2 biases: mean %.4f std %.4f, want 0 and 0.1", mean, std)
	}

	for _, m := range []*model.Model{llama3, qwen} {
		w := m.Weights
		if &w.Output.Data[0] != &w.TokEmbd.Data[0] {
			t.Errorf("%s: output is not token_embd", m.Name)
		}
		s := 3 / math.Sqrt(float64(m.Config.Dim))
		if mean, std := moments(w.OutNorm); math.Abs(mean/s-1) > 0.05 || math.Abs(std/(0.1*s)-1) > 0.2 {
			t.Errorf("%s: output_norm mean %.4f std %.4f, want %.4f and %.4f", m.Name, mean, std, s, 0.1*s)
		}
	}

	// Quantized files keep vectors F32; tiny-qwen2's rows (448 and 1216 values) do not split
	// into Q4_K's blocks of 256 and fall back to Q8_0.
	for _, tc := range []struct {
		p        synth.Preset
		fileType string
	}{
		{synth.TinyLlama3, "Q4_K x71, F32 x22"},
		{synth.TinyQwen2, "Q8_0 x71, F32 x51"},
	} {
		if m := loadPreset(t, tc.p, synth.Q4_K); m.FileType != tc.fileType {
			t.Errorf("%s q4_k: FileType %q, want %q", tc.p.Name, m.FileType, tc.fileType)
		}
	}
}

func slicesMin(x []float32) float32 {
	lo := x[0]
	for _, v := range x {
		lo = min(lo, v)
	}
	return lo
}

// The first layer's attention scores of one query over the first 64 distinct tokens of the
// corpus, biases included: q.k/sqrt(head_dim) spreads over several units in every head of
// every tiny preset, so softmax is far from uniform.
func TestTinyAttentionIsNotUniform(t *testing.T) {
	for _, p := range tinyPresets {
		t.Run(p.Name, func(t *testing.T) { attentionIsNotUniform(t, loadPreset(t, p, synth.F32)) })
	}
}

func attentionIsNotUniform(t *testing.T, m *model.Model) {
	c := m.Config
	var ids []int32
	seen := map[int32]bool{}
	for _, id := range m.Tokenizer.Encode(corpus.Text, true, false) {
		if !seen[id] && len(ids) < 64 {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	ly := m.Weights.Layers[0]
	norm := func(x []float32) []float32 {
		var ss float64
		for _, v := range x {
			ss += float64(v) * float64(v)
		}
		r := 1 / math.Sqrt(ss/float64(len(x))+float64(c.Eps))
		out := make([]float32, len(x))
		for i, v := range x {
			out[i] = float32(float64(v) * r * float64(ly.AttnNorm[i]))
		}
		return out
	}
	matvec := func(w model.Matrix, b []float32, x []float32) []float64 {
		out := make([]float64, w.Rows)
		for i := range out {
			for j, v := range w.Row(i) {
				out[i] += float64(v) * float64(x[j])
			}
			if b != nil {
				out[i] += float64(b[i])
			}
		}
		return out
	}
	qs, ks := make([][]float64, len(ids)), make([][]float64, len(ids))
	for p, id := range ids {
		x := norm(m.Weights.TokEmbd.Row(int(id)))
		qs[p], ks[p] = matvec(ly.Wq, ly.Bq, x), matvec(ly.Wk, ly.Bk, x)
	}
	group := c.NHead / c.NHeadKV
	hd := c.HeadDim
	last := len(ids) - 1
	for h := range c.NHead {
		kh := h / group
		scores := make([]float32, len(ids))
		for p := range ids {
			var s float64
			for i := range hd {
				s += qs[last][h*hd+i] * ks[p][kh*hd+i]
			}
			scores[p] = float32(s / math.Sqrt(float64(hd)))
		}
		_, std := moments(scores)
		// Softmax weight of the favourite key, against the uniform 1/64.
		mx := slicesMax(scores)
		var z float64
		for _, s := range scores {
			z += math.Exp(float64(s - mx))
		}
		top := 1 / z
		t.Logf("head %d: score std %.2f, top softmax weight %.3f", h, std, top)
		if std < 1.2 || std > 5 || top < 4.0/float64(len(ids)) {
			t.Errorf("head %d: score std %.2f, top softmax weight %.3f; want std in [1.2, 5] and top >= %.3f",
				h, std, top, 4.0/float64(len(ids)))
		}
	}
}

func slicesMax(x []float32) float32 {
	hi := x[0]
	for _, v := range x {
		hi = max(hi, v)
	}
	return hi
}

// Every dtype loads, keeps norms F32, and approximates the f32 model of the same seed.
func TestTinyDTypes(t *testing.T) {
	ref := load(t, synth.F32)
	for _, tc := range []struct {
		dt       synth.DType
		fileType string
		relRMS   float64 // bound on rms(error)/rms(weights)
	}{
		{synth.F16, "F16 x72, F32 x21", 5e-4},
		{synth.Q8_0, "Q8_0 x72, F32 x21", 0.008},
		{synth.Q4_K, "Q4_K x72, F32 x21", 0.1},
	} {
		t.Run(string(tc.dt), func(t *testing.T) {
			m := load(t, tc.dt)
			if m.FileType != tc.fileType {
				t.Errorf("FileType = %q, want %q", m.FileType, tc.fileType)
			}
			for _, pair := range [][2][]float32{
				{ref.Weights.TokEmbd.Data, m.Weights.TokEmbd.Data},
				{ref.Weights.Layers[3].Wk.Data, m.Weights.Layers[3].Wk.Data},
				{ref.Weights.Layers[9].WDown.Data, m.Weights.Layers[9].WDown.Data},
			} {
				var e, s float64
				for i, v := range pair[0] {
					d := float64(pair[1][i] - v)
					e += d * d
					s += float64(v) * float64(v)
				}
				r := math.Sqrt(e / s)
				if r > tc.relRMS {
					t.Errorf("relative RMS error %.5f, want <= %g", r, tc.relRMS)
				}
			}
			if !slices.Equal(m.Weights.Layers[4].AttnNorm, ref.Weights.Layers[4].AttnNorm) || !slices.Equal(m.Weights.OutNorm, ref.Weights.OutNorm) {
				t.Errorf("norm weights differ from the f32 model's, want them F32 and equal")
			}
		})
	}
}

// Each tiny preset run by the CPU reference over the start of the corpus: the residual
// stream keeps an RMS near 1 through all ten layers, each block adds a modest update, and
// the logits spread over a few units.
func TestTinyActivationsStaySane(t *testing.T) {
	if synth.RaceEnabled {
		t.Skip("a minute of reference forward pass under -race; it checks numbers, not concurrency")
	}
	for _, p := range tinyPresets {
		t.Run(p.Name, func(t *testing.T) { activationsStaySane(t, loadPreset(t, p, synth.F32)) })
	}
}

func activationsStaySane(t *testing.T, m *model.Model) {
	c := m.Config
	ids := m.Tokenizer.Encode(corpus.Text, true, false)[:128]
	e, err := ref.New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	layers := make([]int, c.NLayer)
	positions := make([]int, len(ids))
	for i := range layers {
		layers[i] = i
	}
	for i := range positions {
		positions[i] = i
	}
	type key struct {
		st    golden.Stage
		layer int
	}
	sumSq, count := map[key]float64{}, map[key]int{}
	var logitStd []float32
	tap := &engine.Tap{
		Sel: engine.NewSelection([]golden.Stage{golden.ResidualPostMLP, golden.AttnOut, golden.MLPOut, golden.Logits},
			layers, c.NLayer, positions, len(ids)),
		Sink: func(st golden.Stage, layer, pos int, row []float32) {
			if st == golden.Logits {
				_, std := moments(row)
				logitStd = append(logitStd, float32(std))
				return
			}
			k := key{st, layer}
			for _, v := range row {
				sumSq[k] += float64(v) * float64(v)
			}
			count[k] += len(row)
		},
	}
	if _, err := e.Forward(ids, 0, tap); err != nil {
		t.Fatal(err)
	}
	for l := range c.NLayer {
		rms := func(st golden.Stage) float64 { k := key{st, l}; return math.Sqrt(sumSq[k] / float64(count[k])) }
		res, attn, mlp := rms(golden.ResidualPostMLP), rms(golden.AttnOut), rms(golden.MLPOut)
		t.Logf("layer %d: residual RMS %.3f, attn_out %.3f, mlp_out %.3f", l, res, attn, mlp)
		if res < 0.7 || res > 2 || attn < 0.02 || attn > 0.5 || mlp < 0.02 || mlp > 0.5 {
			t.Errorf("layer %d: residual RMS %.3f (want 0.7..2), attn_out %.3f and mlp_out %.3f (want 0.02..0.5)", l, res, attn, mlp)
		}
	}
	if len(logitStd) != len(ids) {
		t.Fatalf("%d logit rows for %d positions", len(logitStd), len(ids))
	}
	mean, spread := moments(logitStd)
	t.Logf("logit std over the vocabulary: mean %.2f (spread %.2f)", mean, spread)
	if mean < 1.5 || mean > 6 {
		t.Errorf("logits have a standard deviation of %.2f on average, want 1.5..6", mean)
	}
}
