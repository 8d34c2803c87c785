package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

func init() {
	register("inspect", "show a model's configuration, tensors and tokenizer", runInspect)
}

const inspectUsage = `usage: gretabisect inspect [--model PATH|tiny] [--json]

Checks the model as the engines' loader does, without reading tensor data, and refuses it
(exit 2, one line) when its metadata and tensors disagree or its architecture is not
supported. Prints the architecture, the configuration (with the family's settings: RoPE
style, scaling and frequency factors, attention biases, tied output), the GGUF version and
tensor types, the tokenizer, the metadata and the tensor table (name, type, shape, byte
offset in the file, size).

flags:
`

func runInspect(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("inspect", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, inspectUsage); fs.PrintDefaults() }
	spec := modelFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON instead of text")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "inspect", fmt.Errorf("unexpected argument %q (the model is given with --model)", fs.Arg(0)))
	}
	m, err := model.Inspect(*spec) // checks everything, dequantizes nothing
	if err != nil {
		return fail(stderr, "inspect", err)
	}
	defer m.Close()
	r := inspectReport(m)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false) // pieces such as "<s>" stay readable
		err = enc.Encode(r)
	} else {
		err = r.writeText(stdout)
	}
	if err != nil {
		return fail(stderr, "inspect", err)
	}
	return exitOK
}

// inspection is what inspect prints; its JSON form is meant for scripts.
type inspection struct {
	Name        string           `json:"name"`
	GGUFVersion uint32           `json:"gguf_version"`
	FileSize    uint64           `json:"file_size"`
	Alignment   uint64           `json:"alignment"`
	DataOffset  uint64           `json:"data_offset"`
	FileType    string           `json:"file_type"`
	Config      inspectConfig    `json:"config"`
	Tokenizer   inspectTokenizer `json:"tokenizer"`
	Metadata    []inspectKV      `json:"metadata"`
	Tensors     []inspectTensor  `json:"tensors"`
}

type inspectConfig struct {
	Arch       string  `json:"architecture"`
	NLayer     int     `json:"block_count"`
	Dim        int     `json:"embedding_length"`
	FFNDim     int     `json:"feed_forward_length"`
	NHead      int     `json:"head_count"`
	NHeadKV    int     `json:"head_count_kv"`
	HeadDim    int     `json:"head_dim"`
	RopeDim    int     `json:"rope_dimension_count"`
	RopeBase   float64 `json:"rope_freq_base"`
	RopeStyle  string  `json:"rope_style"`          // norm (adjacent pairs) or neox (halves)
	RopeScale  float64 `json:"rope_scaling_factor"` // linear; 0 for none
	RopeFreqs  bool    `json:"rope_freqs"`          // rope_freqs.weight divides the frequencies (llama3)
	QKVBias    bool    `json:"qkv_bias"`
	Eps        float32 `json:"layer_norm_rms_epsilon"`
	CtxLen     int     `json:"context_length"`
	Vocab      int     `json:"vocab_size"`
	TiedOutput bool    `json:"tied_output"`
}

type inspectTokenizer struct {
	Model  string `json:"model"` // tokenizer.ggml.model: llama (SentencePiece) or gpt2 (byte-level BPE)
	Pre    string `json:"pre"`   // the pre-tokenizer of a gpt2 model
	Merges int    `json:"merges"`
	Tokens int    `json:"tokens"`
	BOS    int32  `json:"bos_id"`
	EOS    int32  `json:"eos_id"`
	UNK    int32  `json:"unk_id"`
	AddBOS bool   `json:"add_bos"`
	AddEOS bool   `json:"add_eos"`
	// The pieces of those ids.
	BOSPiece string `json:"bos_piece"`
	EOSPiece string `json:"eos_piece"`
	UNKPiece string `json:"unk_piece"`
}

type inspectKV struct {
	Key   string `json:"key"`
	Type  string `json:"type"`
	Value string `json:"value"` // arrays: element type, length and the first elements
}

type inspectTensor struct {
	Name   string   `json:"name"`
	Type   string   `json:"type"`
	Shape  []uint64 `json:"shape"`  // GGUF order: shape[0] is the row length
	Offset uint64   `json:"offset"` // byte offset in the file
	Size   uint64   `json:"size"`
}

func inspectReport(m *model.Model) inspection {
	f, c := m.File, m.Config
	v := m.Tokenizer.Vocab()
	r := inspection{
		Name: m.Name, GGUFVersion: f.Version, FileSize: f.Size(), Alignment: f.Alignment,
		DataOffset: f.DataOffset, FileType: m.FileType,
		Config: inspectConfig{Arch: c.Arch, NLayer: c.NLayer, Dim: c.Dim, FFNDim: c.FFNDim, NHead: c.NHead,
			NHeadKV: c.NHeadKV, HeadDim: c.HeadDim, RopeDim: c.RopeDim, RopeBase: c.RopeBase,
			RopeStyle: c.RopeStyle.String(), RopeScale: c.RopeScale, RopeFreqs: c.RopeFreqs, QKVBias: c.QKVBias,
			Eps: c.Eps, CtxLen: c.CtxLen, Vocab: c.Vocab, TiedOutput: c.TiedOutput},
		Tokenizer: inspectTokenizer{Model: v.Model, Pre: v.Pre, Merges: len(v.Merges), Tokens: m.Tokenizer.Size(), BOS: v.BOS, EOS: v.EOS, UNK: v.UNK,
			AddBOS: v.AddBOS, AddEOS: v.AddEOS,
			BOSPiece: m.Tokenizer.Piece(v.BOS), EOSPiece: m.Tokenizer.Piece(v.EOS), UNKPiece: m.Tokenizer.Piece(v.UNK)},
	}
	for _, kv := range f.KVs {
		r.Metadata = append(r.Metadata, inspectKV{kv.Key, typeName(kv.Value.Type().String(), kv.Value.ElemType().String(), kv.Value.Len()), kv.Value.String()})
	}
	for _, t := range f.Tensors {
		r.Tensors = append(r.Tensors, inspectTensor{t.Name, t.Type.String(), t.Dims, f.DataOffset + t.Offset, t.Size})
	}
	return r
}

// ropeText describes the RoPE style and scaling: "neox (halves)", "norm (adjacent pairs),
// frequency factors from rope_freqs.weight, linear scaling 1/8".
func (c inspectConfig) ropeText() string {
	s := "norm (adjacent pairs)"
	if c.RopeStyle == layout.RopeNeox.String() {
		s = "neox (halves)"
	}
	if c.RopeFreqs {
		s += ", frequency factors from rope_freqs.weight"
	}
	if c.RopeScale != 0 {
		s += fmt.Sprintf(", linear scaling 1/%g", c.RopeScale)
	}
	return s
}

func typeName(typ, elem string, n int) string {
	if typ == "array" {
		return fmt.Sprintf("[%d]%s", n, elem)
	}
	return typ
}

func (r inspection) writeText(w io.Writer) error {
	c, tk := r.Config, r.Tokenizer
	tied := "untied"
	if c.TiedOutput {
		tied = "tied to token_embd"
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "model\t%s\n", r.Name)
	fmt.Fprintf(tw, "file\tGGUF v%d, %d bytes, alignment %d, data from byte %d\n", r.GGUFVersion, r.FileSize, r.Alignment, r.DataOffset)
	fmt.Fprintf(tw, "tensor types\t%s\n", r.FileType)
	fmt.Fprintf(tw, "architecture\t%s\n", c.Arch)
	fmt.Fprintf(tw, "layers\t%d\n", c.NLayer)
	fmt.Fprintf(tw, "hidden\t%d (FFN %d)\n", c.Dim, c.FFNDim)
	fmt.Fprintf(tw, "heads\t%d query, %d key/value, head dim %d\n", c.NHead, c.NHeadKV, c.HeadDim)
	fmt.Fprintf(tw, "rope\tdim %d, base %g, %s\n", c.RopeDim, c.RopeBase, c.ropeText())
	bias := "none"
	if c.QKVBias {
		bias = "q, k, v"
	}
	fmt.Fprintf(tw, "attention bias\t%s\n", bias)
	fmt.Fprintf(tw, "rms eps\t%g\n", c.Eps)
	fmt.Fprintf(tw, "context\t%d\n", c.CtxLen)
	fmt.Fprintf(tw, "vocabulary\t%d, output %s\n", c.Vocab, tied)
	kind := "llama (SentencePiece BPE)"
	if tk.Model == tokenizer.ModelGPT2 {
		kind = fmt.Sprintf("gpt2 (byte-level BPE, pre-tokenizer %s, %d merges)", tk.Pre, tk.Merges)
	}
	fmt.Fprintf(tw, "tokenizer\t%s, %d tokens, BOS %d %q, EOS %d %q, UNK %d %q, add BOS %v, add EOS %v\n",
		kind, tk.Tokens, tk.BOS, tk.BOSPiece, tk.EOS, tk.EOSPiece, tk.UNK, tk.UNKPiece, tk.AddBOS, tk.AddEOS)
	fmt.Fprintf(tw, "\nmetadata (%d keys)\n", len(r.Metadata))
	for _, kv := range r.Metadata {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", kv.Key, kv.Type, kv.Value)
	}
	fmt.Fprintf(tw, "\ntensors (%d)\n  name\ttype\tshape\toffset\tsize\n", len(r.Tensors))
	for _, t := range r.Tensors {
		fmt.Fprintf(tw, "  %s\t%s\t%v\t%d\t%d\n", t.Name, t.Type, t.Shape, t.Offset, t.Size)
	}
	return tw.Flush()
}
