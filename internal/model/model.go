// Package model binds a GGUF file to a configuration and weight set of a supported
// architecture (llama, qwen2: see layout.Archs): every dimension comes from the file's
// metadata, and every tensor must have exactly the shape the configuration implies before
// any engine sees it.
package model

import (
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// Config holds the hyperparameters of a model, all read from metadata or implied by its
// architecture and tensors.
type Config struct {
	Arch       string           // general.architecture: llama or qwen2
	NLayer     int              // block_count
	Dim        int              // embedding_length
	FFNDim     int              // feed_forward_length
	NHead      int              // head_count
	NHeadKV    int              // head_count_kv
	HeadDim    int              // Dim / NHead
	RopeDim    int              // rope.dimension_count (default HeadDim)
	RopeBase   float64          // rope.freq_base (default 10000)
	RopeStyle  layout.RopeStyle // from Arch: adjacent pairs (llama) or halves (qwen2, NEOX)
	RopeScale  float64          // linear rope.scaling.factor: positions divided by it; 0 for none
	RopeFreqs  bool             // rope_freqs.weight present: pair i's frequency divided by it (llama3)
	QKVBias    bool             // from Arch: q, k and v projections add a bias (qwen2)
	Eps        float32          // layer_norm_rms_epsilon
	CtxLen     int              // context_length
	Vocab      int              // rows of token_embd
	TiedOutput bool             // no output.weight: logits use token_embd
}

// Model is a validated Llama model.
type Model struct {
	Config    Config
	Weights   *Weights
	Tokenizer *tokenizer.Tokenizer // from the same file
	Name      string               // file base name without ".gguf", or "tiny"
	FileType  string               // tensor types, most frequent first: "F32", "Q4_K x155, F32 x45"
	File      *gguf.File           // the parsed file: metadata and the tensor table
}

// Close releases the file the model was loaded from (its memory map). Weights that alias
// the file must not be used afterwards.
func (m *Model) Close() error {
	if m.File == nil { // a Model assembled by hand
		return nil
	}
	return m.File.Close()
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
