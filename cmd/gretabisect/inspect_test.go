package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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
		RopeDim: 32, RopeBase: 10000, Eps: 1e-5, CtxLen: 2048, Vocab: 2048}
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
		"model         small\n",
		"tensor types  Q8_0 x72, F32 x21\n",
		"heads         8 query, 2 key/value, head dim 32\n",
		"gretabisect.synth.seed                  uint64         2\n",
		"blk.9.ffn_down.weight     Q8_0  [768 256]",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestInspectRefusesBadInput(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.gguf")
	if err := os.WriteFile(garbage, []byte("not a model at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string // start of the one stderr line
	}{
		{[]string{"--model", garbage}, "gretabisect inspect: gguf: " + garbage + ": header: bad magic"},
		{[]string{"--model", filepath.Join(dir, "absent.gguf")}, "gretabisect inspect: open " + filepath.Join(dir, "absent.gguf")},
		{[]string{"--model", "tiny", "extra"}, `gretabisect inspect: unexpected argument "extra"`},
	} {
		code, out, errs := runCLI(t, append([]string{"inspect"}, tc.args...)...)
		if code != exitUsage || out != "" || !strings.HasPrefix(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("inspect %q: exit %d, stdout %q, stderr %q; want exit 2 and one line starting %q", tc.args, code, out, errs, tc.want)
		}
	}
}
