// Package model binds a GGUF file to a Llama configuration and weight set: every dimension
// comes from the file's metadata, and every tensor must have exactly the shape the
// configuration implies before any engine sees it.
package model

import (
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// Config holds the hyperparameters of a Llama-architecture model, all read from metadata.
type Config struct {
	Arch       string  // general.architecture
	NLayer     int     // block_count
	Dim        int     // embedding_length
	FFNDim     int     // feed_forward_length
	NHead      int     // head_count
	NHeadKV    int     // head_count_kv
	HeadDim    int     // Dim / NHead
	RopeDim    int     // rope.dimension_count (default HeadDim)
	RopeBase   float64 // rope.freq_base (default 10000)
	Eps        float32 // layer_norm_rms_epsilon
	CtxLen     int     // context_length
	Vocab      int     // rows of token_embd
	TiedOutput bool    // no output.weight: logits use token_embd
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
	TokEmbd Matrix    // (vocab, dim)
	Layers  []Layer   // NLayer
	OutNorm []float32 // (dim)
	Output  Matrix    // (vocab, dim); the same as TokEmbd when tied
}

// Layer holds one transformer block.
type Layer struct {
	AttnNorm []float32 // (dim)
	Wq       Matrix    // (n_head*head_dim, dim)
	Wk       Matrix    // (n_head_kv*head_dim, dim)
	Wv       Matrix    // (n_head_kv*head_dim, dim)
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
