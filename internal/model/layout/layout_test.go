package layout

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"

	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

func TestTensors(t *testing.T) {
	d := Dims{NLayer: 2, Dim: 2048, FFNDim: 5632, NHead: 32, NHeadKV: 4, Vocab: 32000}
	ts := Tensors(d)
	if len(ts) != 3+9*2 {
		t.Fatalf("%d tensors, want 21", len(ts))
	}
	var names []string
	for _, x := range ts {
		names = append(names, x.Name)
	}
	want := []string{"token_embd.weight",
		"blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight", "blk.0.attn_v.weight",
		"blk.0.attn_output.weight", "blk.0.ffn_norm.weight", "blk.0.ffn_gate.weight", "blk.0.ffn_up.weight",
		"blk.0.ffn_down.weight",
		"blk.1.attn_norm.weight", "blk.1.attn_q.weight", "blk.1.attn_k.weight", "blk.1.attn_v.weight",
		"blk.1.attn_output.weight", "blk.1.ffn_norm.weight", "blk.1.ffn_gate.weight", "blk.1.ffn_up.weight",
		"blk.1.ffn_down.weight",
		"output_norm.weight", "output.weight"}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("names (-want +got):\n%s", diff)
	}
	d.Tied = true
	if n := len(Tensors(d)); n != 20 {
		t.Errorf("tied: %d tensors, want 20 (no output.weight)", n)
	}
}

// TestArchTensors: qwen2 blocks carry q, k and v biases after each projection's weight;
// rope_freqs.weight comes first, with rope_dim/2 factors.
func TestArchTensors(t *testing.T) {
	d := Dims{NLayer: 1, Dim: 896, FFNDim: 4864, NHead: 14, NHeadKV: 2, Vocab: 151936, RopeDim: 64,
		Tied: true, QKVBias: true, RopeFreqs: true}
	var got []string
	for _, x := range Tensors(d) {
		got = append(got, fmt.Sprintf("%s %v", x.Name, x.Shape))
	}
	want := []string{"rope_freqs.weight [32]", "token_embd.weight [896 151936]",
		"blk.0.attn_norm.weight [896]", "blk.0.attn_q.weight [896 896]", "blk.0.attn_q.bias [896]",
		"blk.0.attn_k.weight [896 128]", "blk.0.attn_k.bias [128]", "blk.0.attn_v.weight [896 128]",
		"blk.0.attn_v.bias [128]", "blk.0.attn_output.weight [896 896]", "blk.0.ffn_norm.weight [896]",
		"blk.0.ffn_gate.weight [896 4864]", "blk.0.ffn_up.weight [896 4864]", "blk.0.ffn_down.weight [4864 896]",
		"output_norm.weight [896]"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("tensors (-want +got):\n%s", diff)
	}
	for _, x := range Tensors(d) {
		if x.Role.Vector() != (len(x.Shape) == 1) {
			t.Errorf("%s: Vector() = %v with shape %v", x.Name, x.Role.Vector(), x.Shape)
		}
	}
	for _, tc := range []struct {
		tensor string
		shape  []uint64
		want   string
	}{
		{"blk.0.attn_k.bias", []uint64{896}, "shape [896], want [128] from head_count_kv=2"},
		{"blk.0.attn_q.bias", []uint64{128}, "shape [128], want [896] from embedding_length=896"},
		{"rope_freqs.weight", []uint64{64}, "shape [64], want [32] from rope.dimension_count=64"},
	} {
		for _, x := range Tensors(d) {
			if x.Name == tc.tensor {
				if got := x.Mismatch(tc.shape); got != tc.want {
					t.Errorf("%s.Mismatch(%v) = %q, want %q", tc.tensor, tc.shape, got, tc.want)
				}
			}
		}
	}
	if a, ok := ArchNamed("qwen2"); !ok || a.Rope != RopeNeox || !a.QKVBias || a.RopeFreqs {
		t.Errorf("ArchNamed(qwen2) = %+v, %v", a, ok)
	}
	if a, ok := ArchNamed("llama"); !ok || a.Rope != RopeNorm || a.QKVBias || !a.RopeFreqs {
		t.Errorf("ArchNamed(llama) = %+v, %v", a, ok)
	}
	if _, ok := ArchNamed("gemma2"); ok {
		t.Errorf("ArchNamed(gemma2) found")
	}
}

func TestMismatch(t *testing.T) {
	ts := Tensors(Dims{NLayer: 4, Dim: 2048, FFNDim: 5632, NHead: 32, NHeadKV: 4, Vocab: 32000})
	byName := map[string]Tensor{}
	for _, x := range ts {
		byName[x.Name] = x
	}
	for _, tc := range []struct {
		tensor string
		shape  []uint64
		want   string
	}{
		{"blk.3.attn_k.weight", []uint64{2048, 256}, ""},
		{"blk.3.attn_k.weight", []uint64{2048, 512}, "shape [2048 512], want [2048 256] from head_count_kv=4"},
		{"blk.3.attn_q.weight", []uint64{2048, 1024}, "shape [2048 1024], want [2048 2048] from head_count=32"},
		{"blk.0.ffn_down.weight", []uint64{2048, 5632}, "shape [2048 5632], want [5632 2048] from feed_forward_length=5632, embedding_length=2048"},
		{"blk.0.ffn_norm.weight", []uint64{2048, 1}, "shape [2048 1], want [2048] from embedding_length=2048"},
		{"token_embd.weight", []uint64{2048, 32001}, "shape [2048 32001], want [2048 32000] from vocabulary size 32000"},
	} {
		if got := byName[tc.tensor].Mismatch(tc.shape); got != tc.want {
			t.Errorf("%s.Mismatch(%v) = %q, want %q", tc.tensor, tc.shape, got, tc.want)
		}
	}
}
