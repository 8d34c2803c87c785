package engine

import "github.com/gretabisect/gretabisect/golden"

// Config holds the hyperparameters of a model, all read from metadata or implied by its
// architecture and tensors.
type Config struct {
	Arch       string    // general.architecture: llama or qwen2
	NLayer     int       // block_count
	Dim        int       // embedding_length
	FFNDim     int       // feed_forward_length
	NHead      int       // head_count
	NHeadKV    int       // head_count_kv
	HeadDim    int       // Dim / NHead
	RopeDim    int       // rope.dimension_count (default HeadDim)
	RopeBase   float64   // rope.freq_base (default 10000)
	RopeStyle  RopeStyle // from Arch: adjacent pairs (llama) or halves (qwen2, NEOX)
	RopeScale  float64   // linear rope.scaling.factor: positions divided by it; 0 for none
	RopeFreqs  bool      // rope_freqs.weight present: pair i's frequency divided by it (llama3)
	QKVBias    bool      // from Arch: q, k and v projections add a bias (qwen2)
	Eps        float32   // layer_norm_rms_epsilon
	CtxLen     int       // context_length
	Vocab      int       // rows of token_embd
	TiedOutput bool      // no output.weight: logits use token_embd
}

// StageWidth is the row width of stage st: the query heads for q and the attention context,
// the key-value heads for k and v, the vocabulary for logits, the model width for the
// residual stream and everything added to it.
func (c Config) StageWidth(st golden.Stage) int {
	switch st {
	case golden.QPreRope, golden.QPostRope, golden.AttnCtx:
		return c.NHead * c.HeadDim
	case golden.KPreRope, golden.KPostRope, golden.V:
		return c.NHeadKV * c.HeadDim
	case golden.Logits:
		return c.Vocab
	}
	return c.Dim
}

// Model is what an engine runs: a validated model's configuration and weights. It is
// read-only for engines: the weights may alias a memory-mapped file that other engines and
// the reference share.
type Model struct {
	Name     string // the file's base name without ".gguf", or the embedded model's spec ("tiny")
	FileType string // tensor types as stored, most frequent first: "F32", "Q4_K x155, F32 x45"
	Config   Config
	Weights  *Weights // dequantized to float32
}

// Weights are the model's tensors. Matrices are row-major with one row per output feature
// (GGUF dims [in, out]): y = W x is a dot product of each row with x.
type Weights struct {
	RopeFreqs []float32 // (rope_dim/2) frequency divisors; nil unless Config.RopeFreqs
	TokEmbd   Matrix    // (vocab, dim)
	Layers    []Layer   // NLayer
	OutNorm   []float32 // (dim)
	Output    Matrix    // (vocab, dim); the same as TokEmbd when tied
}

// Layer holds one transformer block. The biases are nil unless Config.QKVBias.
type Layer struct {
	AttnNorm []float32 // (dim)
	Wq       Matrix    // (n_head*head_dim, dim)
	Bq       []float32 // (n_head*head_dim)
	Wk       Matrix    // (n_head_kv*head_dim, dim)
	Bk       []float32 // (n_head_kv*head_dim)
	Wv       Matrix    // (n_head_kv*head_dim, dim)
	Bv       []float32 // (n_head_kv*head_dim)
	Wo       Matrix    // (dim, n_head*head_dim)
	FFNNorm  []float32 // (dim)
	WGate    Matrix    // (ffn, dim)  ffn_gate
	WUp      Matrix    // (ffn, dim)  ffn_up
	WDown    Matrix    // (dim, ffn)  ffn_down
}

// Matrix is a weight matrix in float32, row-major. Data may alias a memory-mapped file.
type Matrix struct {
	Name string
	Rows int
	Cols int
	Data []float32 // Rows*Cols
}

// Row returns row i.
func (m Matrix) Row(i int) []float32 { return m.Data[i*m.Cols : (i+1)*m.Cols] }

// RopeStyle is how RoPE pairs the elements of a head, fixed by the architecture as
// llama.cpp's llama_model_rope_type fixes it.
type RopeStyle uint8

const (
	// RopeNorm rotates adjacent pairs (x[2i], x[2i+1]) (llama.cpp's LLAMA_ROPE_TYPE_NORM).
	RopeNorm RopeStyle = iota
	// RopeNeox rotates the halves of the rotary dimension against each other: pair i is
	// (x[i], x[i+rope_dim/2]) (LLAMA_ROPE_TYPE_NEOX, GPT-NeoX and the HF rotate_half).
	RopeNeox
)

func (s RopeStyle) String() string {
	if s == RopeNeox {
		return "neox"
	}
	return "norm"
}
