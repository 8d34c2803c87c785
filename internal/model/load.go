package model

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	"github.com/gretabisect/gretabisect/internal/synth"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// TinySpec is the Open spec of the embedded default model.
const TinySpec = "tiny"

// embedded are the models Open generates in memory, each named by its preset: the default
// model and the small models of the Llama 3 and Qwen2 families, all f32 from seed 0.
var embedded = []synth.Preset{synth.Tiny, synth.TinyLlama3, synth.TinyQwen2}

// images holds the GGUF image of each embedded model (index as in embedded), generated on
// first use. An image is shared by every Model opened from it: its F32 weights alias it and
// must not be written.
var images = make([]struct {
	once sync.Once
	data []byte
	err  error
}, len(embedded))

// EmbeddedSpecs lists the specs of the embedded models, the default first:
// "tiny", "tiny-llama3", "tiny-qwen2".
func EmbeddedSpecs() []string {
	specs := make([]string, len(embedded))
	for i, p := range embedded {
		specs[i] = p.Name
	}
	return specs
}

// IsEmbedded reports whether Open generates the model of spec in memory rather than reading
// a file ("" is the default model). A file whose path is an embedded spec is opened as
// "./tiny-qwen2".
func IsEmbedded(spec string) bool { return embeddedIndex(spec) >= 0 }

func embeddedIndex(spec string) int {
	return slices.IndexFunc(embedded, func(p synth.Preset) bool { return p.Name == cmp.Or(spec, TinySpec) })
}

// Open opens a model by spec: one of EmbeddedSpecs ("" is "tiny", the embedded default
// model), generated in memory by internal/synth (that preset, f32, seed 0) once per
// process and then parsed like any file, its Name the spec; anything else is a path for
// Load. Callers that honour GRETA_MODEL read it themselves and pass its value here.
func Open(spec string) (*Model, error) { return open(spec, FromFile) }

// Inspect opens a model by spec as Open does and checks everything Open checks except the
// tensor data, which it leaves unread: the Model has nil Weights. It is how to look at a
// quantized model without dequantizing gigabytes.
func Inspect(spec string) (*Model, error) { return open(spec, header) }

// open opens spec's file and hands it to bind (FromFile or header).
func open(spec string, bind func(*gguf.File, string) (*Model, error)) (*Model, error) {
	i := embeddedIndex(spec)
	if i < 0 {
		return load(spec, bind)
	}
	name := embedded[i].Name
	img := &images[i]
	img.once.Do(func() {
		if img.data, img.err = synth.Generate(embedded[i], synth.F32, 0); img.err != nil {
			img.err = fmt.Errorf("model: generating the %s model: %w", name, img.err)
		}
	})
	if img.err != nil {
		return nil, img.err
	}
	f, err := gguf.Parse(img.data)
	if err != nil {
		return nil, fmt.Errorf("model: %s: %w", name, err)
	}
	return bind(f, name)
}

// Load memory-maps the GGUF file at path and binds it (see FromFile). The model's Name is
// the file's base name without ".gguf". Close releases the mapping.
func Load(path string) (*Model, error) { return load(path, FromFile) }

func load(path string, bind func(*gguf.File, string) (*Model, error)) (*Model, error) {
	f, err := gguf.Open(path)
	if err != nil {
		return nil, err
	}
	m, err := bind(f, strings.TrimSuffix(filepath.Base(path), ".gguf"))
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// FromFile binds a parsed GGUF file to a model: the configuration from its metadata
// (ReadConfig), the vocabulary size from token_embd.weight, the tokenizer from the same
// file, and every tensor the configuration implies (layout.Tensors), each with exactly the
// implied shape. output.weight may be absent: the output projection is then token_embd
// (TiedOutput). A llama file may hold rope_freqs.weight (RopeFreqs); a qwen2 file must hold
// the q, k and v biases of every block.
//
// It refuses, naming the tensor: a missing tensor (with block_count and the number of
// layers present when whole layers are missing), a tensor of a block beyond block_count, a
// shape other than the implied one (with both shapes and the metadata behind the wanted
// one), a tensor the architecture does not use (running without it would compute another
// model), and a tokenizer whose size is not token_embd's row count.
//
// F32 tensors alias the file image (zero copy: a memory-mapped file stays on disk until
// read); F16, BF16, Q8_0, Q4_0, Q5_0, Q4_K, Q5_K and Q6_K tensors are dequantized to
// float32 at load. The Model owns f: Close closes it.
func FromFile(f *gguf.File, name string) (*Model, error) {
	m, err := header(f, name)
	if err != nil {
		return nil, err
	}
	c := m.Config
	w := &Weights{Layers: make([]Layer, c.NLayer)}
	for _, s := range tensorsOf(c) {
		t, _ := f.Tensor(s.Name) // header found every one
		data, err := f.Float32(t)
		if err != nil {
			return nil, fmt.Errorf("model: %w", err)
		}
		bind(w, s, data)
	}
	if c.TiedOutput {
		w.Output = w.TokEmbd
	}
	m.Weights = w
	if err := Check(&m.Model); err != nil { // the shapes again, and the values of rope_freqs
		return nil, err
	}
	return m, nil
}

// header is FromFile without reading tensor data: everything but Weights.
func header(f *gguf.File, name string) (*Model, error) {
	c, err := ReadConfig(f)
	if err != nil {
		return nil, err
	}
	emb, ok := f.Tensor(layout.TokEmbd.String())
	if !ok {
		return nil, fmt.Errorf("model: tensor %q missing", layout.TokEmbd.String())
	}
	if len(emb.Dims) != 2 || emb.Dims[1] > maxVocab {
		return nil, fmt.Errorf("model: %s: shape %v, want [%d vocab] with vocab <= %d", emb.Name, emb.Dims, c.Dim, maxVocab)
	}
	c.Vocab = int(emb.Dims[1])
	_, hasOutput := f.Tensor(layout.Output.String())
	c.TiedOutput = !hasOutput
	arch, _ := layout.ArchNamed(c.Arch) // ReadConfig accepted it
	_, hasFreqs := f.Tensor(layout.RopeFreqs.String())
	c.RopeFreqs = hasFreqs && arch.RopeFreqs
	if err := checkBlocks(f, c.NLayer, c.Arch); err != nil {
		return nil, err
	}

	present := layersPresent(f)
	want := tensorsOf(c)
	for _, s := range want {
		t, ok := f.Tensor(s.Name)
		switch {
		case !ok && s.Layer >= present:
			return nil, fmt.Errorf("model: tensor %q missing: %s.%s = %d but the file holds %d layers", s.Name, c.Arch, layout.KeyBlockCount, c.NLayer, present)
		case !ok && s.Role.Bias():
			return nil, fmt.Errorf("model: tensor %q missing: %s has q, k and v biases in every block", s.Name, c.Arch)
		case !ok:
			return nil, fmt.Errorf("model: tensor %q missing", s.Name)
		}
		if msg := s.Mismatch(t.Dims); msg != "" {
			return nil, fmt.Errorf("model: %s: %s", s.Name, msg)
		}
		if !t.Type.Supported() {
			return nil, fmt.Errorf("model: %s: tensor type %s cannot be converted to float32", s.Name, t.Type)
		}
	}
	if len(f.Tensors) != len(want) { // every wanted tensor is present: the others are extra
		for i := range f.Tensors {
			if name := f.Tensors[i].Name; !slices.ContainsFunc(want, func(s layout.Tensor) bool { return s.Name == name }) {
				return nil, fmt.Errorf("model: tensor %q is not part of a %s model: running without it would compute another model", name, c.Arch)
			}
		}
	}

	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("model: %w", err)
	}
	if tok.Size() != c.Vocab {
		return nil, fmt.Errorf("model: tokenizer has %d tokens but %s has %d rows", tok.Size(), emb.Name, c.Vocab)
	}
	return &Model{Model: engine.Model{Config: c, Name: name, FileType: typeSummary(f)}, Tokenizer: tok, File: f}, nil
}

// tensorsOf lists the tensors c requires.
func tensorsOf(c Config) []layout.Tensor {
	return layout.Tensors(layout.Dims{NLayer: c.NLayer, Dim: c.Dim, FFNDim: c.FFNDim,
		NHead: c.NHead, NHeadKV: c.NHeadKV, Vocab: c.Vocab, RopeDim: c.RopeDim,
		Tied: c.TiedOutput, QKVBias: c.QKVBias, RopeFreqs: c.RopeFreqs})
}

// maxVocab bounds the vocabulary (token_embd's row count); real vocabularies stay far below.
const maxVocab = 1 << 22

// bind stores a tensor's data in w's field of its role.
func bind(w *Weights, s layout.Tensor, data []float32) {
	if v := vectorOf(w, s); v != nil {
		*v = data
		return
	}
	*matrixOf(w, s) = Matrix{Name: s.Name, Rows: int(s.Shape[1]), Cols: int(s.Shape[0]), Data: data}
}

// vectorOf returns w's field of a one-dimensional tensor's role, nil for a matrix.
func vectorOf(w *Weights, s layout.Tensor) *[]float32 {
	switch s.Role {
	case layout.RopeFreqs:
		return &w.RopeFreqs
	case layout.AttnQBias:
		return &w.Layers[s.Layer].Bq
	case layout.AttnKBias:
		return &w.Layers[s.Layer].Bk
	case layout.AttnVBias:
		return &w.Layers[s.Layer].Bv
	case layout.AttnNorm:
		return &w.Layers[s.Layer].AttnNorm
	case layout.FFNNorm:
		return &w.Layers[s.Layer].FFNNorm
	case layout.OutputNorm:
		return &w.OutNorm
	}
	return nil
}

// matrixOf returns w's field of a matrix tensor's role.
func matrixOf(w *Weights, s layout.Tensor) *Matrix {
	switch s.Role {
	case layout.TokEmbd:
		return &w.TokEmbd
	case layout.Output:
		return &w.Output
	case layout.AttnQ:
		return &w.Layers[s.Layer].Wq
	case layout.AttnK:
		return &w.Layers[s.Layer].Wk
	case layout.AttnV:
		return &w.Layers[s.Layer].Wv
	case layout.AttnOutput:
		return &w.Layers[s.Layer].Wo
	case layout.FFNGate:
		return &w.Layers[s.Layer].WGate
	case layout.FFNUp:
		return &w.Layers[s.Layer].WUp
	case layout.FFNDown:
		return &w.Layers[s.Layer].WDown
	}
	panic(fmt.Sprintf("model: no field for tensor role %v", s.Role))
}

// blockOf returns N for a tensor named "blk.N.<anything>".
func blockOf(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, "blk.")
	if !ok {
		return 0, false
	}
	num, _, ok := strings.Cut(rest, ".")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(num)
	return n, err == nil && n >= 0
}

// layersPresent returns one more than the highest block index among f's tensors.
func layersPresent(f *gguf.File) int {
	n := 0
	for i := range f.Tensors {
		if b, ok := blockOf(f.Tensors[i].Name); ok {
			n = max(n, b+1)
		}
	}
	return n
}

// checkBlocks refuses a tensor of a block at or beyond block_count: the metadata and the
// tensors disagree about the depth of the model.
func checkBlocks(f *gguf.File, nLayer int, arch string) error {
	for i := range f.Tensors {
		if b, ok := blockOf(f.Tensors[i].Name); ok && b >= nLayer {
			return fmt.Errorf("model: tensor %q is beyond %s.%s = %d", f.Tensors[i].Name, arch, layout.KeyBlockCount, nLayer)
		}
	}
	return nil
}

// typeSummary describes the tensor types of f, most frequent first: "Q4_K x155, Q6_K x23,
// F32 x45" (just "F32" when there is one type).
func typeSummary(f *gguf.File) string {
	counts := map[gguf.Type]int{}
	for i := range f.Tensors {
		counts[f.Tensors[i].Type]++
	}
	types := make([]gguf.Type, 0, len(counts))
	for t := range counts {
		types = append(types, t)
	}
	slices.SortFunc(types, func(a, b gguf.Type) int {
		return cmp.Or(cmp.Compare(counts[b], counts[a]), cmp.Compare(a, b))
	})
	if len(types) == 1 {
		return types[0].String()
	}
	parts := make([]string, len(types))
	for i, t := range types {
		parts[i] = fmt.Sprintf("%s x%d", t, counts[t])
	}
	return strings.Join(parts, ", ")
}
