package model

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model/layout"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// fixture is a small GGUF file under construction: width 16, 4 heads of 4, 2 KV heads, FFN
// 32, 2 layers, and a vocabulary of <unk> <s> </s> and the 256 byte tokens. A llama fixture
// has an output.weight; a qwen2 fixture has q/k/v biases and tied embeddings, as Qwen2.5.
type fixture struct {
	arch    string
	kvs     []gguf.KV
	tensors []fixtureTensor
}

type fixtureTensor struct {
	name string
	typ  gguf.Type
	dims []uint64
}

const (
	fxDim, fxFFN, fxHeads, fxKV, fxLayers = 16, 32, 4, 2, 2
	fxVocab                               = 3 + 256
)

func fxVocabulary() tokenizer.Vocab {
	v := tokenizer.Vocab{Tokens: []string{"<unk>", "<s>", "</s>"}, Types: []int32{2, 3, 3},
		BOS: 1, EOS: 2, UNK: 0, AddBOS: true, AddSpacePrefix: true}
	for b := range 256 {
		v.Tokens = append(v.Tokens, fmt.Sprintf("<0x%02X>", b))
		v.Types = append(v.Types, tokenizer.TypeByte)
	}
	v.Scores = make([]float32, len(v.Tokens))
	return v
}

func newFixture() *fixture { return newArchFixture("llama") }

func newArchFixture(arch string) *fixture {
	u32 := func(n int) gguf.Value { return gguf.ValueOf(uint32(n)) }
	p := arch + "."
	fx := &fixture{arch: arch, kvs: []gguf.KV{
		{Key: "general.architecture", Value: gguf.ValueOf(arch)},
		{Key: p + "block_count", Value: u32(fxLayers)},
		{Key: p + "embedding_length", Value: u32(fxDim)},
		{Key: p + "feed_forward_length", Value: u32(fxFFN)},
		{Key: p + "attention.head_count", Value: u32(fxHeads)},
		{Key: p + "attention.head_count_kv", Value: u32(fxKV)},
		{Key: p + "attention.layer_norm_rms_epsilon", Value: gguf.ValueOf(float32(1e-5))},
		{Key: p + "context_length", Value: u32(64)},
	}}
	fx.kvs = append(fx.kvs, fxVocabulary().Metadata()...)
	fx.setLayers(fxLayers)
	return fx
}

// setLayers replaces the tensors with those of n layers (block_count is left alone).
func (fx *fixture) setLayers(n int) {
	fx.tensors = nil
	qwen := fx.arch == "qwen2"
	for _, t := range layout.Tensors(layout.Dims{NLayer: n, Dim: fxDim, FFNDim: fxFFN,
		NHead: fxHeads, NHeadKV: fxKV, Vocab: fxVocab, QKVBias: qwen, Tied: qwen}) {
		fx.tensors = append(fx.tensors, fixtureTensor{t.Name, gguf.F32, t.Shape})
	}
}

// addRopeFreqs adds a rope_freqs.weight of the right length (the head dimension is 4).
func (fx *fixture) addRopeFreqs() {
	fx.tensors = append(fx.tensors, fixtureTensor{"rope_freqs.weight", gguf.F32, []uint64{2}})
}

func (fx *fixture) setKV(key string, v gguf.Value) {
	for i := range fx.kvs {
		if fx.kvs[i].Key == key {
			fx.kvs[i].Value = v
			return
		}
	}
	fx.kvs = append(fx.kvs, gguf.KV{Key: key, Value: v})
}

func (fx *fixture) dropKV(key string) {
	for i := range fx.kvs {
		if fx.kvs[i].Key == key {
			fx.kvs = append(fx.kvs[:i], fx.kvs[i+1:]...)
			return
		}
	}
	panic("no key " + key)
}

func (fx *fixture) index(name string) int {
	for i := range fx.tensors {
		if fx.tensors[i].name == name {
			return i
		}
	}
	panic("no tensor " + name)
}

func (fx *fixture) tensor(name string) *fixtureTensor { return &fx.tensors[fx.index(name)] }

func (fx *fixture) dropTensor(name string) {
	i := fx.index(name)
	fx.tensors = slices.Delete(fx.tensors, i, i+1)
}

// fxValue is the value of element i of tensor number k: distinct, exact in F16.
func fxValue(k, i int) float32 { return float32((k*7+i)%64-32) / 16 }

// values returns the data of tensor number k: fxValue, but positive factors for rope_freqs.
func (fx *fixture) values(k int) []float32 {
	ft := fx.tensors[k]
	n := 1
	for _, d := range ft.dims {
		n *= int(d)
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = fxValue(k, i)
		if ft.name == layout.RopeFreqs.String() {
			v[i] = float32(i+1) / 2
		}
	}
	return v
}

// bytes encodes the fixture as a GGUF image.
func (fx *fixture) bytes(t testing.TB) []byte {
	t.Helper()
	w := gguf.NewWriter()
	for _, kv := range fx.kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for k, ft := range fx.tensors {
		src := fx.values(k)
		size, err := ft.typ.RowBytes(uint64(len(src)))
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		if ft.typ.Supported() { // else zeros: a type the loader must refuse anyway
			if err := gguf.Quantize(ft.typ, src, data); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.AddTensor(ft.name, ft.typ, ft.dims, data); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func (fx *fixture) load(t *testing.T) (*Model, error) {
	t.Helper()
	f, err := gguf.Parse(fx.bytes(t))
	if err != nil {
		t.Fatalf("fixture does not parse: %v", err)
	}
	return FromFile(f, "fixture")
}

func TestFromFileRefusesInconsistentModels(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(fx *fixture)
		want   string
	}{
		{"qwen2 missing a q bias", func(fx *fixture) { *fx = *newArchFixture("qwen2"); fx.dropTensor("blk.0.attn_q.bias") },
			`model: tensor "blk.0.attn_q.bias" missing: qwen2 has q, k and v biases in every block`},
		{"qwen2 missing every bias", func(fx *fixture) {
			*fx = *newArchFixture("qwen2")
			fx.tensors = slices.DeleteFunc(fx.tensors, func(t fixtureTensor) bool { return strings.HasSuffix(t.name, ".bias") })
		}, `model: tensor "blk.0.attn_q.bias" missing: qwen2 has q, k and v biases in every block`},
		{"qwen2 v bias sized for head_count", func(fx *fixture) {
			*fx = *newArchFixture("qwen2")
			fx.tensor("blk.1.attn_v.bias").dims = []uint64{16}
		}, `model: blk.1.attn_v.bias: shape [16], want [8] from head_count_kv=2`},
		{"qwen2 q bias of two dimensions", func(fx *fixture) {
			*fx = *newArchFixture("qwen2")
			fx.tensor("blk.0.attn_q.bias").dims = []uint64{16, 1}
		}, `model: blk.0.attn_q.bias: shape [16 1], want [16] from embedding_length=16`},
		{"qwen2 with rope_freqs", func(fx *fixture) { *fx = *newArchFixture("qwen2"); fx.addRopeFreqs() },
			`model: tensor "rope_freqs.weight" is not part of a qwen2 model: running without it would compute another model`},
		{"qwen2 with yarn scaling", func(fx *fixture) {
			*fx = *newArchFixture("qwen2")
			fx.setKV("qwen2.rope.scaling.type", gguf.ValueOf("yarn"))
		}, `model: qwen2.rope.scaling.type = "yarn" is not supported (want none or linear)`},
		{"qwen2 missing a key", func(fx *fixture) { *fx = *newArchFixture("qwen2"); fx.dropKV("qwen2.context_length") },
			`model: required key "qwen2.context_length" missing`},
		{"missing layer tensor", func(fx *fixture) { fx.dropTensor("blk.1.ffn_up.weight") },
			`model: tensor "blk.1.ffn_up.weight" missing`},
		{"wrong norm length", func(fx *fixture) { fx.tensor("blk.0.attn_norm.weight").dims = []uint64{15} },
			`model: blk.0.attn_norm.weight: shape [15], want [16] from embedding_length=16`},
		{"attn_k sized for head_count instead of head_count_kv",
			func(fx *fixture) { fx.tensor("blk.1.attn_k.weight").dims = []uint64{16, 16} },
			`model: blk.1.attn_k.weight: shape [16 16], want [16 8] from head_count_kv=2`},
		{"ffn_down transposed", func(fx *fixture) { fx.tensor("blk.0.ffn_down.weight").dims = []uint64{16, 32} },
			`model: blk.0.ffn_down.weight: shape [16 32], want [32 16] from feed_forward_length=32, embedding_length=16`},
		{"output with the wrong vocabulary", func(fx *fixture) { fx.tensor("output.weight").dims = []uint64{16, 258} },
			`model: output.weight: shape [16 258], want [16 259] from vocabulary size 259`},
		{"head_count does not divide the hidden size",
			func(fx *fixture) { fx.setKV("llama.attention.head_count", gguf.ValueOf(uint32(3))) },
			`model: llama.attention.head_count = 3 does not divide llama.embedding_length = 16`},
		{"head_count_kv does not divide head_count",
			func(fx *fixture) { fx.setKV("llama.attention.head_count_kv", gguf.ValueOf(uint32(3))) },
			`model: llama.attention.head_count_kv = 3 does not divide llama.attention.head_count = 4`},
		{"block_count larger than the layers present",
			func(fx *fixture) { fx.setKV("llama.block_count", gguf.ValueOf(uint32(4))) },
			`model: tensor "blk.2.attn_norm.weight" missing: llama.block_count = 4 but the file holds 2 layers`},
		{"block_count 32 with 22 layers, the seed report's crash", func(fx *fixture) {
			fx.setLayers(22)
			fx.setKV("llama.block_count", gguf.ValueOf(uint32(32)))
		}, `model: tensor "blk.22.attn_norm.weight" missing: llama.block_count = 32 but the file holds 22 layers`},
		{"tensors beyond block_count",
			func(fx *fixture) { fx.setKV("llama.block_count", gguf.ValueOf(uint32(1))) },
			`model: tensor "blk.1.attn_norm.weight" is beyond llama.block_count = 1`},
		{"tokenizer size disagrees with token_embd", func(fx *fixture) {
			fx.tensor("token_embd.weight").dims = []uint64{16, 260}
			fx.tensor("output.weight").dims = []uint64{16, 260}
		}, `model: tokenizer has 259 tokens but token_embd.weight has 260 rows`},
		{"missing required key", func(fx *fixture) { fx.dropKV("llama.feed_forward_length") },
			`model: required key "llama.feed_forward_length" missing`},
		{"missing epsilon", func(fx *fixture) { fx.dropKV("llama.attention.layer_norm_rms_epsilon") },
			`model: required key "llama.attention.layer_norm_rms_epsilon" missing`},
		{"zero embedding length", func(fx *fixture) { fx.setKV("llama.embedding_length", gguf.ValueOf(uint32(0))) },
			`model: llama.embedding_length = 0, want 1..16777216`},
		{"negative block count", func(fx *fixture) { fx.setKV("llama.block_count", gguf.ValueOf(int32(-2))) },
			`model: gguf: key "llama.block_count": value -2 of type int32 is negative, want unsigned integer`},
		{"block count of the wrong type", func(fx *fixture) { fx.setKV("llama.block_count", gguf.ValueOf("2")) },
			`model: gguf: key "llama.block_count": value of type string, want unsigned integer`},
		{"odd rope dimension", func(fx *fixture) { fx.setKV("llama.rope.dimension_count", gguf.ValueOf(uint32(3))) },
			`model: llama.rope.dimension_count = 3, want an even number no larger than the head dimension 4`},
		{"negative rope base", func(fx *fixture) { fx.setKV("llama.rope.freq_base", gguf.ValueOf(float32(-1))) },
			`model: llama.rope.freq_base = -1, want a positive finite value`},
		{"NaN epsilon", func(fx *fixture) {
			fx.setKV("llama.attention.layer_norm_rms_epsilon", gguf.ValueOf(float32(math.NaN())))
		}, `model: llama.attention.layer_norm_rms_epsilon = NaN, want a value in (0, 1]`},
		{"unsupported architecture", func(fx *fixture) { fx.setKV("general.architecture", gguf.ValueOf("gemma2")) },
			`model: general.architecture "gemma2" is not supported (supported: llama, qwen2)`},
		{"phi3", func(fx *fixture) { fx.setKV("general.architecture", gguf.ValueOf("phi3")) },
			`model: general.architecture "phi3" is not supported (supported: llama, qwen2)`},
		{"rope_freqs of the wrong length", func(fx *fixture) {
			fx.addRopeFreqs()
			fx.tensor("rope_freqs.weight").dims = []uint64{4}
		}, `model: rope_freqs.weight: shape [4], want [2] from rope.dimension_count=4`},
		{"rope_freqs for a partial rotary dimension", func(fx *fixture) {
			fx.addRopeFreqs()
			fx.setKV("llama.rope.dimension_count", gguf.ValueOf(uint32(2)))
		}, `model: rope_freqs.weight: shape [2], want [1] from rope.dimension_count=2`},
		{"llama with a q bias", func(fx *fixture) {
			fx.tensors = append(fx.tensors, fixtureTensor{"blk.0.attn_q.bias", gguf.F32, []uint64{16}})
		}, `model: tensor "blk.0.attn_q.bias" is not part of a llama model: running without it would compute another model`},
		{"llama with an output bias", func(fx *fixture) {
			fx.tensors = append(fx.tensors, fixtureTensor{"blk.1.attn_output.bias", gguf.F32, []uint64{16}})
		}, `model: tensor "blk.1.attn_output.bias" is not part of a llama model: running without it would compute another model`},
		{"yarn scaling", func(fx *fixture) { fx.setKV("llama.rope.scaling.type", gguf.ValueOf("yarn")) },
			`model: llama.rope.scaling.type = "yarn" is not supported (want none or linear)`},
		{"longrope scaling", func(fx *fixture) { fx.setKV("llama.rope.scaling.type", gguf.ValueOf("longrope")) },
			`model: llama.rope.scaling.type = "longrope" is not supported (want none or linear)`},
		{"negative linear factor", func(fx *fixture) { fx.setKV("llama.rope.scaling.factor", gguf.ValueOf(float32(-2))) },
			`model: llama.rope.scaling.factor = -2, want a positive finite value`},
		{"negative factor under the older key", func(fx *fixture) { fx.setKV("llama.rope.scale_linear", gguf.ValueOf(float32(-4))) },
			`model: llama.rope.scale_linear = -4, want a positive finite value`},
		{"scaled rotary magnitude", func(fx *fixture) { fx.setKV("llama.rope.scaling.attn_factor", gguf.ValueOf(float32(0.5))) },
			`model: llama.rope.scaling.attn_factor = 0.5 is not supported (want 1)`},
		{"scaling type of the wrong type", func(fx *fixture) { fx.setKV("llama.rope.scaling.type", gguf.ValueOf(uint32(1))) },
			`model: gguf: key "llama.rope.scaling.type": value of type uint32, want string`},
		{"key length other than the head dimension", func(fx *fixture) { fx.setKV("llama.attention.key_length", gguf.ValueOf(uint32(8))) },
			`model: llama.attention.key_length = 8, want the head dimension llama.embedding_length / llama.attention.head_count = 4 (other head widths are not supported)`},
		{"tensor of a type without float32 conversion", func(fx *fixture) { fx.tensor("blk.1.ffn_norm.weight").typ = gguf.I32 },
			`model: blk.1.ffn_norm.weight: tensor type I32 cannot be converted to float32`},
		{"missing token_embd", func(fx *fixture) { fx.dropTensor("token_embd.weight") },
			`model: tensor "token_embd.weight" missing`},
		{"tokenizer model unsupported", func(fx *fixture) { fx.setKV("tokenizer.ggml.model", gguf.ValueOf("bert")) },
			`model: tokenizer: key "tokenizer.ggml.model": tokenizer model "bert" is not supported (only "llama", SentencePiece BPE, and "gpt2", byte-level BPE)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fx := newFixture()
			tc.modify(fx)
			m, err := fx.load(t)
			if err == nil {
				t.Fatalf("FromFile succeeded (config %+v), want error %q", m.Config, tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("FromFile error:\n got %q\nwant %q", err, tc.want)
			}
			// Inspect refuses the same file with the same error.
			path := filepath.Join(t.TempDir(), "bad.gguf")
			if err := os.WriteFile(path, fx.bytes(t), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := Inspect(path); err == nil || err.Error() != path+": "+tc.want {
				t.Errorf("Inspect error %v, want %q", err, path+": "+tc.want)
			}
		})
	}
}

func TestFromFileBindsEveryTensor(t *testing.T) {
	llama := newFixture()
	llama.addRopeFreqs()
	llama.setKV("llama.rope.scaling.type", gguf.ValueOf("linear"))
	llama.setKV("llama.rope.scaling.factor", gguf.ValueOf(float32(4)))
	llama.setKV("llama.attention.key_length", gguf.ValueOf(uint32(4))) // as Llama 3.2 files have
	for _, tc := range []struct {
		fx   *fixture
		want Config
	}{
		{llama, Config{Arch: "llama", NLayer: 2, Dim: 16, FFNDim: 32, NHead: 4, NHeadKV: 2, HeadDim: 4,
			RopeDim: 4, RopeBase: 10000, RopeStyle: layout.RopeNorm, RopeScale: 4, RopeFreqs: true,
			Eps: 1e-5, CtxLen: 64, Vocab: 259}},
		{newArchFixture("qwen2"), Config{Arch: "qwen2", NLayer: 2, Dim: 16, FFNDim: 32, NHead: 4, NHeadKV: 2, HeadDim: 4,
			RopeDim: 4, RopeBase: 10000, RopeStyle: layout.RopeNeox, QKVBias: true,
			Eps: 1e-5, CtxLen: 64, Vocab: 259, TiedOutput: true}},
	} {
		t.Run(tc.fx.arch, func(t *testing.T) {
			fx := tc.fx
			image := fx.bytes(t)
			f, err := gguf.Parse(image)
			if err != nil {
				t.Fatal(err)
			}
			m, err := FromFile(f, "fixture")
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if diff := cmp.Diff(tc.want, m.Config); diff != "" {
				t.Errorf("Config (-want +got):\n%s", diff)
			}
			if m.Name != "fixture" || m.FileType != "F32" || m.Tokenizer.Size() != 259 {
				t.Errorf("Name, FileType, tokens = %q, %q, %d; want fixture, F32, 259", m.Name, m.FileType, m.Tokenizer.Size())
			}

			// Every tensor lands in its field with its values, and F32 data aliases the image.
			w := m.Weights
			got := map[string][]float32{"rope_freqs.weight": w.RopeFreqs, "token_embd.weight": w.TokEmbd.Data,
				"output_norm.weight": w.OutNorm, "output.weight": w.Output.Data}
			for l, ly := range w.Layers {
				for _, x := range []struct {
					r layout.Role
					d []float32
				}{{layout.AttnNorm, ly.AttnNorm}, {layout.AttnQ, ly.Wq.Data}, {layout.AttnQBias, ly.Bq},
					{layout.AttnK, ly.Wk.Data}, {layout.AttnKBias, ly.Bk}, {layout.AttnV, ly.Wv.Data},
					{layout.AttnVBias, ly.Bv}, {layout.AttnOutput, ly.Wo.Data}, {layout.FFNNorm, ly.FFNNorm},
					{layout.FFNGate, ly.WGate.Data}, {layout.FFNUp, ly.WUp.Data}, {layout.FFNDown, ly.WDown.Data}} {
					got[layout.BlockName(l, x.r)] = x.d
				}
			}
			lo, hi := uintptr(unsafe.Pointer(&image[0])), uintptr(unsafe.Pointer(&image[len(image)-1]))
			for k, ft := range fx.tensors {
				d := got[ft.name]
				if len(d) == 0 {
					t.Fatalf("tensor %s not bound", ft.name)
				}
				if diff := cmp.Diff(fx.values(k), d); diff != "" {
					t.Fatalf("%s (-file +bound):\n%s", ft.name, diff)
				}
				if p := uintptr(unsafe.Pointer(&d[0])); p < lo || p > hi {
					t.Errorf("%s: F32 data was copied, want it to alias the file image", ft.name)
				}
			}
			if ly := w.Layers[1]; ly.Wk.Rows != 8 || ly.Wk.Cols != 16 || ly.WDown.Rows != 16 || ly.WDown.Cols != 32 || ly.Wk.Name != "blk.1.attn_k.weight" {
				t.Errorf("blk.1 attn_k %dx%d %q, ffn_down %dx%d; want 8x16 blk.1.attn_k.weight, 16x32",
					ly.Wk.Rows, ly.Wk.Cols, ly.Wk.Name, ly.WDown.Rows, ly.WDown.Cols)
			}
			if tc.want.TiedOutput && &w.Output.Data[0] != &w.TokEmbd.Data[0] {
				t.Errorf("tied output does not share token_embd")
			}
		})
	}
}

// TestRopeScalingKeys: llama.cpp's reading of the scaling keys, which apply to every
// architecture: an absent type is linear, a zero or unit factor and type none mean no scaling.
func TestRopeScalingKeys(t *testing.T) {
	f32 := func(x float32) gguf.Value { return gguf.ValueOf(x) }
	for _, tc := range []struct {
		arch string
		kvs  map[string]gguf.Value
		want float64
	}{
		{"llama", nil, 0},
		{"llama", map[string]gguf.Value{"rope.scaling.factor": f32(8)}, 8},
		{"llama", map[string]gguf.Value{"rope.scaling.type": gguf.ValueOf("linear"), "rope.scaling.factor": f32(0.5)}, 0.5},
		{"llama", map[string]gguf.Value{"rope.scaling.type": gguf.ValueOf("none"), "rope.scaling.factor": f32(8)}, 0},
		{"llama", map[string]gguf.Value{"rope.scaling.factor": f32(0)}, 0},
		{"llama", map[string]gguf.Value{"rope.scaling.factor": f32(1)}, 0},
		{"llama", map[string]gguf.Value{"rope.scale_linear": f32(2)}, 2},
		{"llama", map[string]gguf.Value{"rope.scaling.factor": f32(3), "rope.scale_linear": f32(2)}, 3},
		{"llama", map[string]gguf.Value{"rope.scaling.attn_factor": f32(1), "rope.scaling.original_context_length": gguf.ValueOf(uint32(8192))}, 0},
		{"qwen2", map[string]gguf.Value{"rope.scaling.type": gguf.ValueOf("linear"), "rope.scaling.factor": f32(4)}, 4},
	} {
		fx := newArchFixture(tc.arch)
		for k, v := range tc.kvs {
			fx.setKV(tc.arch+"."+k, v)
		}
		m, err := fx.load(t)
		if err != nil {
			t.Errorf("%s %v: %v", tc.arch, tc.kvs, err)
			continue
		}
		if m.Config.RopeScale != tc.want {
			t.Errorf("%s %v: RopeScale = %v, want %v", tc.arch, tc.kvs, m.Config.RopeScale, tc.want)
		}
	}
}

// TestFromFileRefusesBadRopeFreqs: factors are read by FromFile (Inspect reads no data), and
// a zero, negative or non-finite divisor of a frequency is refused.
func TestFromFileRefusesBadRopeFreqs(t *testing.T) {
	for _, bad := range []float32{0, -1, float32(math.Inf(1)), float32(math.NaN())} {
		fx := newFixture()
		fx.addRopeFreqs()
		img := fx.bytes(t)
		f, err := gguf.Parse(img)
		if err != nil {
			t.Fatal(err)
		}
		ti, _ := f.Tensor("rope_freqs.weight")
		data := f.TensorData(ti)
		binary.LittleEndian.PutUint32(data[4:], math.Float32bits(bad))
		want := fmt.Sprintf(`model: tensor "rope_freqs.weight": factor 1 is %v, want a positive finite value`, bad)
		if _, err := FromFile(f, "bad"); err == nil || err.Error() != want {
			t.Errorf("rope_freqs [0.5 %v]: error %v, want %q", bad, err, want)
		}
	}
}

func TestFromFileTiedOutputAndDequantizedTypes(t *testing.T) {
	fx := newFixture()
	fx.dropTensor("output.weight")
	for i := range fx.tensors {
		if !strings.Contains(fx.tensors[i].name, "norm") {
			fx.tensors[i].typ = gguf.F16
		}
	}
	fx.tensor("blk.0.ffn_down.weight").typ = gguf.Q8_0
	m, err := fx.load(t)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Config.TiedOutput || &m.Weights.Output.Data[0] != &m.Weights.TokEmbd.Data[0] {
		t.Errorf("TiedOutput = %v and output shares token_embd = %v, want both true",
			m.Config.TiedOutput, &m.Weights.Output.Data[0] == &m.Weights.TokEmbd.Data[0])
	}
	if want := "F16 x14, F32 x5, Q8_0 x1"; m.FileType != want {
		t.Errorf("FileType = %q, want %q", m.FileType, want)
	}
	// fxValue is exact in F16.
	for i, v := range m.Weights.TokEmbd.Data {
		if v != fxValue(0, i) {
			t.Fatalf("token_embd[%d] = %v, want %v", i, v, fxValue(0, i))
		}
	}
	k := fx.index("blk.0.ffn_down.weight")
	for i, v := range m.Weights.Layers[0].WDown.Data {
		if d := math.Abs(float64(v - fxValue(k, i))); d > 2.0/127 {
			t.Fatalf("ffn_down[%d] = %v, want %v within one Q8_0 step", i, v, fxValue(k, i))
		}
	}
}

func TestLoadNamesTheModelAfterTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small-model.gguf")
	if err := os.WriteFile(path, newFixture().bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "small-model" {
		t.Errorf("Name = %q, want small-model", m.Name)
	}
	if err := m.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}

	fx := newFixture()
	fx.dropTensor("blk.0.attn_q.weight")
	if err := os.WriteFile(path, fx.bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err == nil || !strings.HasPrefix(err.Error(), path+": model: ") {
		t.Errorf("Load of a bad file: error %v, want one starting with the path", err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "absent.gguf")); err == nil {
		t.Errorf("Load of a missing file succeeded")
	}
}

func TestInspectReadsNoTensorData(t *testing.T) {
	fx := newFixture()
	fx.tensor("blk.0.ffn_down.weight").typ = gguf.Q8_0
	path := filepath.Join(t.TempDir(), "m.gguf")
	if err := os.WriteFile(path, fx.bytes(t), 0o644); err != nil {
		t.Fatal(err)
	}
	full, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer full.Close()
	m, err := Inspect(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if m.Weights != nil {
		t.Errorf("Inspect bound weights, want nil")
	}
	if diff := cmp.Diff(full.Config, m.Config); diff != "" {
		t.Errorf("Inspect config differs from Load's (-load +inspect):\n%s", diff)
	}
	if m.Name != "m" || m.FileType != full.FileType || m.Tokenizer.Size() != full.Tokenizer.Size() {
		t.Errorf("Inspect: name %q type %q tokens %d; Load: %q %q %d", m.Name, m.FileType, m.Tokenizer.Size(),
			full.Name, full.FileType, full.Tokenizer.Size())
	}
}
