package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/synth"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatch(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestInspectTinyJSON(t *testing.T) {
	code, out, errs := runCLI(t, "inspect", "--model", "tiny", "--json")
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	var r inspection
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output is not JSON: %v", err)
	}
	wantConfig := inspectConfig{Arch: "llama", NLayer: 10, Dim: 256, FFNDim: 768, NHead: 8, NHeadKV: 2, HeadDim: 32,
		RopeDim: 32, RopeBase: 10000, RopeStyle: "norm", Eps: 1e-5, CtxLen: 2048, Vocab: 2048}
	if diff := cmp.Diff(wantConfig, r.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if r.Name != "tiny" || r.GGUFVersion != 3 || r.FileType != "F32" || len(r.Tensors) != 3+9*10 {
		t.Errorf("name %q version %d file type %q, %d tensors; want tiny, 3, F32, 93", r.Name, r.GGUFVersion, r.FileType, len(r.Tensors))
	}
	if tk := r.Tokenizer; tk.Tokens != 2048 || tk.BOSPiece != "<s>" || !tk.AddBOS {
		t.Errorf("tokenizer %+v", tk)
	}
	// Offsets are absolute, aligned, and each tensor ends before the next begins.
	for i, ts := range r.Tensors {
		if ts.Offset%r.Alignment != 0 || ts.Offset < r.DataOffset || ts.Offset+ts.Size > r.FileSize {
			t.Errorf("tensor %s at %d size %d: not aligned or outside the data section", ts.Name, ts.Offset, ts.Size)
		}
		if i > 0 && r.Tensors[i-1].Offset+r.Tensors[i-1].Size > ts.Offset {
			t.Errorf("tensor %s overlaps its predecessor", ts.Name)
		}
	}
	if got := r.Tensors[3]; got.Name != "blk.0.attn_k.weight" || got.Type != "F32" || !cmp.Equal(got.Shape, []uint64{256, 64}) {
		t.Errorf("tensor 3 = %+v, want blk.0.attn_k.weight F32 [256 64]", got)
	}
}

func TestInspectText(t *testing.T) {
	path := filepath.Join(t.TempDir(), "small.gguf")
	img, err := synth.Generate(synth.Tiny, synth.Q8_0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, img, 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := runCLI(t, "inspect", "--model", path)
	if code != exitOK || errs != "" {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{
		"model           small\n",
		"tensor types    Q8_0 x72, F32 x21\n",
		"heads           8 query, 2 key/value, head dim 32\n",
		"rope            dim 32, base 10000, norm (adjacent pairs)\n",
		"attention bias  none\n",
		"gretabisect.synth.seed                  uint64         2\n",
		"blk.9.ffn_down.weight     Q8_0  [768 256]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// TestInspectFamilies: the family settings of the generated Llama 3 and Qwen2 models, in
// text and JSON.
func TestInspectFamilies(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		p    synth.Preset
		text []string
		json inspectConfig
	}{
		{synth.TinyLlama3, []string{
			"architecture    llama\n",
			"rope            dim 32, base 500000, norm (adjacent pairs), frequency factors from rope_freqs.weight\n",
			"attention bias  none\n",
			"vocabulary      2048, output tied to token_embd\n",
			"rope_freqs.weight ",
		}, inspectConfig{Arch: "llama", NLayer: 10, Dim: 256, FFNDim: 1024, NHead: 8, NHeadKV: 2, HeadDim: 32,
			RopeDim: 32, RopeBase: 500000, RopeStyle: "norm", RopeFreqs: true, Eps: 1e-5, CtxLen: 2048, Vocab: 2048, TiedOutput: true}},
		{synth.TinyQwen2, []string{
			"architecture    qwen2\n",
			"heads           14 query, 2 key/value, head dim 32\n",
			"rope            dim 32, base 1e+06, neox (halves)\n",
			"attention bias  q, k, v\n",
			"vocabulary      2048, output tied to token_embd\n",
			"blk.9.attn_k.bias ",
		}, inspectConfig{Arch: "qwen2", NLayer: 10, Dim: 448, FFNDim: 1216, NHead: 14, NHeadKV: 2, HeadDim: 32,
			RopeDim: 32, RopeBase: 1e6, RopeStyle: "neox", QKVBias: true, Eps: 1e-6, CtxLen: 2048, Vocab: 2048, TiedOutput: true}},
	} {
		path := filepath.Join(dir, tc.p.Name+".gguf")
		if err := synth.WriteFile(path, tc.p, synth.F32, 0, nil); err != nil {
			t.Fatal(err)
		}
		code, out, errs := runCLI(t, "inspect", "--model", path)
		if code != exitOK || errs != "" {
			t.Fatalf("%s: exit %d, stderr %q", tc.p.Name, code, errs)
		}
		for _, want := range tc.text {
			if !strings.Contains(out, want) {
				t.Errorf("%s: output lacks %q:\n%s", tc.p.Name, want, out)
			}
		}
		code, out, errs = runCLI(t, "inspect", "--model", path, "--json")
		var r inspection
		if err := json.Unmarshal([]byte(out), &r); code != exitOK || err != nil {
			t.Fatalf("%s --json: exit %d, %v, stderr %q", tc.p.Name, code, err, errs)
		}
		if diff := cmp.Diff(tc.json, r.Config); diff != "" {
			t.Errorf("%s config (-want +got):\n%s", tc.p.Name, diff)
		}
	}
}

// rewrite writes preset p to path with the architecture renamed (unless arch is "") and
// without the tensor named drop.
func rewrite(t *testing.T, path string, p synth.Preset, arch, drop string) {
	t.Helper()
	img, err := synth.Generate(p, synth.F32, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := gguf.Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	w := gguf.NewWriter()
	for _, kv := range f.KVs {
		if kv.Key == "general.architecture" && arch != "" {
			kv.Value = gguf.ValueOf(arch)
		}
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		if ti.Name == drop {
			continue
		}
		if err := w.AddTensor(ti.Name, ti.Type, ti.Dims, f.TensorData(ti)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
}

func TestInspectRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.gguf")
	if err := os.WriteFile(garbage, []byte("not a model at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	gemma, phi, noBias := filepath.Join(dir, "gemma2.gguf"), filepath.Join(dir, "phi3.gguf"), filepath.Join(dir, "nobias.gguf")
	rewrite(t, gemma, synth.Tiny, "gemma2", "")
	rewrite(t, phi, synth.TinyQwen2, "phi3", "")
	rewrite(t, noBias, synth.TinyQwen2, "", "blk.3.attn_v.bias")
	for _, tc := range []struct {
		args []string
		want string // start of the one stderr line
	}{
		{[]string{"--model", garbage}, "gretabisect inspect: gguf: " + garbage + ": header: bad magic"},
		{[]string{"--model", filepath.Join(dir, "absent.gguf")}, "gretabisect inspect: open " + filepath.Join(dir, "absent.gguf")},
		{[]string{"--model", "tiny", "extra"}, `gretabisect inspect: unexpected argument "extra"`},
		{[]string{"--model", gemma}, "gretabisect inspect: " + gemma + `: model: general.architecture "gemma2" is not supported (supported: llama, qwen2)`},
		{[]string{"--model", phi}, "gretabisect inspect: " + phi + `: model: general.architecture "phi3" is not supported (supported: llama, qwen2)`},
		{[]string{"--model", noBias}, "gretabisect inspect: " + noBias + `: model: tensor "blk.3.attn_v.bias" missing: qwen2 has q, k and v biases in every block`},
	} {
		code, out, errs := runCLI(t, append([]string{"inspect"}, tc.args...)...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("inspect %q: exit %d, stdout %q, stderr %q; want exit 2 and one line starting %q", tc.args, code, out, errs, tc.want)
		}
	}
}
