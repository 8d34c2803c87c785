// Package synth generates GGUF models of the supported architectures with random weights,
// deterministic from a seed: the embedded default model ("tiny") that the tests and the CPU
// reference run, small models of the Llama 3 and Qwen2 families ("tiny-llama3",
// "tiny-qwen2"), and models with the exact dimensions of TinyLlama 1.1B, Llama 3.2 1B and
// Qwen2.5 0.5B ("tinyllama", "llama3.2-1b", "qwen2.5-0.5b") for scale and speed work.
//
// # Determinism
//
// The bytes of a generated file are the same on every machine and architecture, because
// golden trace hashes depend on them. Each tensor has its own counter-based splitmix64
// stream, keyed by the seed and the tensor name; each weight is an Irwin-Hall sum of four
// 16-bit uniforms (integer arithmetic), turned into a float by one multiply in float64 and
// one add, written so that no architecture fuses them, then rounded to float32. No math
// function ever sees a random value. The llama3 RoPE frequency factors are computed with
// internal/detmath. The vocabulary comes from tokenizer.Train on corpus.Text, itself
// deterministic. TestTinyHash pins the SHA-256 of the tiny f32 file.
//
// # Scaling
//
// Random weights with unit variance would blow the residual stream up within a few layers
// and make attention uniform or one-hot. The standard deviations are chosen so that, for a
// residual stream of RMS about 1 and RMSNorm outputs of RMS about 1:
//
//   - token_embd: std 1, so the residual stream starts at RMS 1 and every token differs.
//   - attn_norm, ffn_norm, output_norm: mean 1, std 0.1: near identity, but a wrong norm
//     weight still changes the result.
//   - attn_q.bias, attn_k.bias, attn_v.bias (qwen2): mean 0, std 0.1, a small shift that a
//     forgotten bias still makes visible.
//   - attn_q, attn_k: std sqrt(2.5/dim). A query or key element then has variance
//     2.5, and q.k/sqrt(head_dim) has standard deviation about 2.5: attention
//     scores spread over several units, so softmax picks favourites without being one-hot.
//   - attn_v, ffn_gate, ffn_up: std 1/sqrt(fan_in), preserving unit variance.
//   - attn_output, ffn_down: std 1/sqrt(fan_in * 2 * n_layer). Each of the 2*n_layer
//     residual additions then has variance at most 1/(2*n_layer), so the stream leaving
//     the last layer has RMS at most about sqrt(2), whatever the depth.
//   - output: std 3/sqrt(dim), logits of standard deviation about 3: a peaked but not
//     degenerate next-token distribution, so top-5 lists and greedy choices are stable.
//   - Tied embeddings (no output.weight): the logits use token_embd, of std 1, so
//     output_norm has mean 3/sqrt(dim) and std 0.3/sqrt(dim) instead, for the same logits.
//
// Quantized dtypes quantize these same float32 values, so a q8_0 model approximates the f32
// model of the same seed. Norm weights stay F32 in every dtype, as in real files.
//
// # No committed copy
//
// The tiny model is generated at run time rather than committed: its f32 file is about
// 35 MB, too large for the repository, and generating it takes milliseconds once the
// vocabulary is trained. The pinned SHA-256 guards its stability as well as a committed
// copy would.
package synth

import (
	"bytes"
	"fmt"
	"io"
	"math"
	"sync"

	"github.com/gretabisect/gretabisect/internal/corpus"
	"github.com/gretabisect/gretabisect/internal/detmath"
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// TinyVocab is the size of the vocabulary trained on corpus.Text.
const TinyVocab = 2048

// Metadata keys that record how a file was generated.
const (
	KeyPreset = "gretabisect.synth.preset"
	KeySeed   = "gretabisect.synth.seed"
)

// Progress is told how many bytes of tensor data have been generated out of total.
type Progress func(done, total uint64)

// NewWriter returns a GGUF writer for preset p in dtype dt from seed. Tensor data is
// generated while the writer writes, a chunk at a time, so even the 4.4 GB tinyllama f32
// file is never held in memory. progress, if not nil, is called after every chunk. The
// writer is meant to write once.
func NewWriter(p Preset, dt DType, seed uint64, progress Progress) (*gguf.Writer, error) {
	w, _, err := newWriter(p, dt, seed, progress)
	return w, err
}

// newWriter is NewWriter, also returning the generator (which knows the data size).
func newWriter(p Preset, dt DType, seed uint64, progress Progress) (*gguf.Writer, *generator, error) {
	di, ok := dtypeInfo[dt]
	if !ok {
		return nil, nil, fmt.Errorf("synth: unknown dtype %q", dt)
	}
	a, ok := layout.ArchNamed(p.Arch)
	if !ok {
		return nil, nil, fmt.Errorf("synth: preset %s: architecture %q is not supported", p.Name, p.Arch)
	}
	vocab, err := vocabMetadata(p)
	if err != nil {
		return nil, nil, err
	}
	w := gguf.NewWriter()
	arch := a.Name + "."
	kvs := []gguf.KV{
		{Key: "general.architecture", Value: gguf.ValueOf(a.Name)},
		{Key: "general.name", Value: gguf.ValueOf("gretabisect synthetic " + p.Name)},
		{Key: "general.file_type", Value: gguf.ValueOf(di.fileType)},
		{Key: KeyPreset, Value: gguf.ValueOf(p.Name)},
		{Key: KeySeed, Value: gguf.ValueOf(seed)},
		{Key: arch + layout.KeyContextLen, Value: gguf.ValueOf(uint32(p.CtxLen))},
		{Key: arch + layout.KeyEmbeddingLen, Value: gguf.ValueOf(uint32(p.Dim))},
		{Key: arch + layout.KeyBlockCount, Value: gguf.ValueOf(uint32(p.NLayer))},
		{Key: arch + layout.KeyFeedForwardLen, Value: gguf.ValueOf(uint32(p.FFNDim))},
		{Key: arch + layout.KeyRopeDimCount, Value: gguf.ValueOf(uint32(p.Dim / p.NHead))},
		{Key: arch + layout.KeyHeadCount, Value: gguf.ValueOf(uint32(p.NHead))},
		{Key: arch + layout.KeyHeadCountKV, Value: gguf.ValueOf(uint32(p.NHeadKV))},
		{Key: arch + layout.KeyRMSEps, Value: gguf.ValueOf(p.Eps)},
		{Key: arch + layout.KeyRopeFreqBase, Value: gguf.ValueOf(float32(p.RopeBase))},
	}
	for _, kv := range append(kvs, vocab...) {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			return nil, nil, fmt.Errorf("synth: %w", err)
		}
	}

	g := &generator{seed: seed, progress: progress}
	tensors := layout.Tensors(layout.Dims{NLayer: p.NLayer, Dim: p.Dim, FFNDim: p.FFNDim,
		NHead: p.NHead, NHeadKV: p.NHeadKV, Vocab: p.Vocab, RopeDim: p.Dim / p.NHead,
		Tied: p.Tied, QKVBias: a.QKVBias, RopeFreqs: p.Llama3 != nil})
	for _, t := range tensors {
		typ := di.typ
		switch {
		case t.Role.Vector():
			typ = gguf.F32
		case t.Shape[0]%typ.BlockSize() != 0:
			typ = di.fallback
		}
		size, err := typ.RowBytes(elements(t.Shape))
		if err == nil && t.Shape[0]%typ.BlockSize() != 0 {
			err = fmt.Errorf("rows of %d values do not split into %s blocks of %d", t.Shape[0], typ, typ.BlockSize())
		}
		if err != nil {
			return nil, nil, fmt.Errorf("synth: tensor %q: %w", t.Name, err)
		}
		g.total += size
		data := g.tensor(t, typ, distOf(t.Role, p))
		if t.Role == layout.RopeFreqs {
			data = g.values(p.Llama3.factors(p.Dim/p.NHead, p.RopeBase))
		}
		if err := w.AddTensorFunc(t.Name, typ, t.Shape, data); err != nil {
			return nil, nil, fmt.Errorf("synth: %w", err)
		}
	}
	return w, g, nil
}

// factors returns the rope_freqs.weight of llama3 scaling for a head of headDim and a RoPE
// base, by the formula of llama.cpp's converter: pair i has frequency f = base^(-2i/headDim)
// and wavelength 2 pi/f; its factor is 1 below the wavelength OrigCtx/HighFreqFactor, Factor
// above OrigCtx/LowFreqFactor, and 1/((1-s)/Factor + s) between, s = (OrigCtx/wavelength -
// LowFreqFactor)/(HighFreqFactor - LowFreqFactor). The converter computes in float32; this
// computes in float64 with detmath, the same on every machine, and rounds once.
func (r *Llama3Rope) factors(headDim int, base float64) []float32 {
	lnBase := detmath.Log(base)
	ctx := float64(r.OrigCtx)
	lowWave, highWave := ctx/r.LowFreqFactor, ctx/r.HighFreqFactor
	out := make([]float32, headDim/2)
	for i := range out {
		wave := 2 * math.Pi / detmath.Exp(-float64(float64(2*i)/float64(headDim))*lnBase)
		switch {
		case wave < highWave:
			out[i] = 1
		case wave > lowWave:
			out[i] = float32(r.Factor)
		default:
			s := (ctx/wave - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
			out[i] = float32(1 / ((1-s)/r.Factor + s))
		}
	}
	return out
}

// Generate returns the GGUF image of preset p in dtype dt from seed, built in memory: meant
// for the tiny preset.
func Generate(p Preset, dt DType, seed uint64) ([]byte, error) {
	w, g, err := newWriter(p, dt, seed, nil)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	buf.Grow(int(g.total) + 1<<20) // the data plus room for the header and padding
	if err := w.Write(&buf); err != nil {
		return nil, fmt.Errorf("synth: %w", err)
	}
	return buf.Bytes(), nil
}

// WriteFile streams preset p in dtype dt from seed to path, atomically (a temporary file
// renamed into place).
func WriteFile(path string, p Preset, dt DType, seed uint64, progress Progress) error {
	w, err := NewWriter(p, dt, seed, progress)
	if err != nil {
		return err
	}
	if err := w.WriteFile(path); err != nil {
		return fmt.Errorf("synth: %s: %w", path, err)
	}
	return nil
}

// distOf is the weight distribution of a tensor role (see the package doc).
func distOf(r layout.Role, p Preset) dist {
	fanIn := func(n int) float64 { return 1 / math.Sqrt(float64(n)) }
	residual := math.Sqrt(float64(2 * p.NLayer))
	switch r {
	case layout.TokEmbd:
		return dist{0, 1}
	case layout.OutputNorm:
		if p.Tied {
			return dist{3 * fanIn(p.Dim), 0.3 * fanIn(p.Dim)}
		}
		return dist{1, 0.1}
	case layout.AttnNorm, layout.FFNNorm:
		return dist{1, 0.1}
	case layout.AttnQBias, layout.AttnKBias, layout.AttnVBias:
		return dist{0, 0.1}
	case layout.AttnQ, layout.AttnK:
		return dist{0, math.Sqrt(2.5 / float64(p.Dim))}
	case layout.AttnOutput:
		return dist{0, fanIn(p.Dim) / residual}
	case layout.FFNDown:
		return dist{0, fanIn(p.FFNDim) / residual}
	case layout.Output:
		return dist{0, 3 * fanIn(p.Dim)}
	}
	return dist{0, fanIn(p.Dim)} // attn_v, ffn_gate, ffn_up
}

func elements(shape []uint64) uint64 {
	n := uint64(1)
	for _, d := range shape {
		n *= d
	}
	return n
}

// chunkElems is about how many weights are generated and encoded at a time.
const chunkElems = 1 << 20

// generator produces tensor data for a Writer. The Writer calls the data functions one
// after another, so they share the scratch buffers.
type generator struct {
	seed        uint64
	progress    Progress
	done, total uint64
	f           []float32
	b           []byte
}

// tensor returns the data function of t: rows of weights drawn from d, encoded as typ.
func (g *generator) tensor(t layout.Tensor, typ gguf.Type, d dist) func(io.Writer) error {
	return func(w io.Writer) error {
		s := newStream(g.seed, t.Name)
		n := elements(t.Shape)
		row := t.Shape[0]
		step := max(1, chunkElems/row) * row
		for first := uint64(0); first < n; first += step {
			m := min(step, n-first)
			size, err := typ.RowBytes(m)
			if err != nil {
				return err
			}
			if uint64(cap(g.f)) < m || uint64(cap(g.b)) < size {
				g.f, g.b = make([]float32, m), make([]byte, size)
			}
			src, dst := g.f[:m], g.b[:size]
			s.fill(src, first, d)
			if err := gguf.Quantize(typ, src, dst); err != nil {
				return err
			}
			if _, err := w.Write(dst); err != nil {
				return err
			}
			g.done += size
			if g.progress != nil {
				g.progress(g.done, g.total)
			}
		}
		return nil
	}
}

// values returns the data function of a tensor of fixed F32 values.
func (g *generator) values(v []float32) func(io.Writer) error {
	return func(w io.Writer) error {
		b := make([]byte, 4*len(v))
		if err := gguf.Quantize(gguf.F32, v, b); err != nil {
			return err
		}
		if _, err := w.Write(b); err != nil {
			return err
		}
		g.done += uint64(len(b))
		if g.progress != nil {
			g.progress(g.done, g.total)
		}
		return nil
	}
}

// vocabMetadata returns the tokenizer metadata of p's vocabulary.
func vocabMetadata(p Preset) ([]gguf.KV, error) {
	v, err := vocabFor(p)
	if err != nil {
		return nil, err
	}
	return v.Metadata(), nil
}

// trained caches the vocabularies by kind and size: training is a pure function of them.
var trained sync.Map // vocabKey -> *trainedVocab

type vocabKey struct {
	kind VocabKind
	size int
}

type trainedVocab struct {
	once sync.Once
	v    tokenizer.Vocab
	err  error
}

// vocabFor returns p's vocabulary, trained on corpus.Text once per process: SentencePiece
// (tokenizer.Train) padded to p.Vocab tokens with unused pieces "<unused_N>" that no text
// can produce, or byte-level BPE in the layout of the Llama 3 or Qwen2 vocabulary
// (tokenizer.TrainBPE, which places the family's special tokens and pads itself).
func vocabFor(p Preset) (tokenizer.Vocab, error) {
	var train func() (tokenizer.Vocab, error)
	switch p.VocabKind {
	case VocabSPM:
		train = func() (tokenizer.Vocab, error) { return spmVocab(p) }
	case VocabLlamaBPE:
		train = func() (tokenizer.Vocab, error) { return tokenizer.TrainBPE(corpus.Text, tokenizer.Llama3, p.Vocab) }
	case VocabQwen2BPE:
		train = func() (tokenizer.Vocab, error) { return tokenizer.TrainBPE(corpus.Text, tokenizer.Qwen2, p.Vocab) }
	default:
		return tokenizer.Vocab{}, fmt.Errorf("synth: preset %s: unknown vocabulary kind %q", p.Name, p.VocabKind)
	}
	e, _ := trained.LoadOrStore(vocabKey{p.VocabKind, p.Vocab}, &trainedVocab{})
	t := e.(*trainedVocab)
	t.once.Do(func() { t.v, t.err = train() })
	if t.err != nil {
		return tokenizer.Vocab{}, fmt.Errorf("synth: preset %s: training the vocabulary: %w", p.Name, t.err)
	}
	return t.v, nil
}

func spmVocab(p Preset) (tokenizer.Vocab, error) {
	v, err := tokenizer.Train(corpus.Text, TinyVocab)
	if err != nil {
		return tokenizer.Vocab{}, err
	}
	n := len(v.Tokens)
	if p.Vocab < n {
		return tokenizer.Vocab{}, fmt.Errorf("vocabulary size %d smaller than the trained %d", p.Vocab, n)
	}
	if p.Vocab == n {
		return v, nil
	}
	tokens, scores, types := make([]string, p.Vocab), make([]float32, p.Vocab), make([]int32, p.Vocab)
	copy(tokens, v.Tokens)
	copy(scores, v.Scores) // nil Scores: all 0
	for i := range types {
		switch {
		case i >= n:
			tokens[i] = fmt.Sprintf("<unused_%d>", i-n)
			types[i] = tokenizer.TypeUnused
		case v.Types == nil:
			types[i] = tokenizer.TypeNormal
		default:
			types[i] = v.Types[i]
		}
	}
	v.Tokens, v.Scores, v.Types = tokens, scores, types
	return v, nil
}
