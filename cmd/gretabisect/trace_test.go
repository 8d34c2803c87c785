package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/ref"
)

// runCmd runs the command line and returns its exit code, stdout and stderr.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := dispatch(args, &out, &errb)
	return code, out.String(), errb.String()
}

func readTrace(t *testing.T, path string) []golden.Record {
	t.Helper()
	tr, err := golden.ReadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	return tr.Records
}

func TestTraceTokens(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "trace", "--model", "tiny", "--tokens", "1,40,41,42", "--prompt-id", "mine",
		"--layers", "0", "--positions", "all", "--stages", "attn_in,logits", "--max-tokens", "2", "--raw", "--out", out)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if stdout != "" || !strings.Contains(stderr, "mine (prefill): 6 tokens (4 prompt + 2 generated)") {
		t.Errorf("stdout %q, stderr %q", stdout, stderr)
	}
	recs := readTrace(t, filepath.Join(out, "mine_trace.jsonl"))
	if len(recs) != 12 { // 6 positions x (attn_in of layer 0 + logits)
		t.Fatalf("%d records, want 12", len(recs))
	}
	for _, r := range recs {
		if r.RawFile == "" {
			t.Fatalf("%v has no raw file", golden.KeyOf(r))
		}
		_, data, err := golden.ReadNpyFile(filepath.Join(out, r.RawFile))
		if err != nil || golden.HashRow(data) != r.Hash {
			t.Errorf("%s: %v, hash mismatch", r.RawFile, err)
		}
	}
}

func TestTraceRouteCheck(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "trace", "--prompt", "p0_short", "--layers", "all", "--positions", "all",
		"--route-check", "--quiet", "--out", out)
	if code != exitOK || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := "route-check: candidate route decode, baseline route prefill\n" +
		"policy exact: 1 prompt (1 match, 0 diverged, 0 missing); 1320 records compared, 0 mismatched, 0 missing\n"
	if stdout != want {
		t.Errorf("stdout\n%s\nwant\n%s", stdout, want)
	}
	for _, p := range []string{"p0_short_trace.jsonl", "decode/p0_short_trace.jsonl"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Error(err)
		}
	}
}

// decodeFault is the CPU reference with a fault on one-token passes: a KV-cache bug that
// only the decode route has.
type decodeFault struct{ engine.Engine }

func (d decodeFault) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	if len(tokens) == 1 && pos0 == 3 {
		t2 := *tap
		t2.Faults = append(t2.Faults, engine.Fault{Stage: golden.KPostRope, Layer: 1, PosMin: 3, PosMax: 3, Scale: 1, Add: 0.5})
		tap = &t2
	}
	return d.Engine.Forward(tokens, pos0, tap)
}

func init() {
	engine.Register("cpu-decode-fault", func(m *engine.Model) (engine.Engine, error) {
		e, err := ref.New(m)
		return decodeFault{e}, err
	})
}

func TestTraceRouteCheckFindsDivergence(t *testing.T) {
	code, stdout, stderr := runCmd(t, "trace", "--prompt", "p0_short", "--backend", "cpu-decode-fault", "--layers", "all",
		"--route-check", "--quiet", "--out", t.TempDir())
	if code != exitDiverged {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	want := "p0_short: FIRST_FAIL pos=3 layer=1 tensor=k_post_rope category=ATTENTION_MECHANISM"
	if !strings.Contains(stdout, want) {
		t.Errorf("stdout\n%s\nwant a line starting %q", stdout, want)
	}
}

func TestTraceEnvironmentPlan(t *testing.T) {
	t.Setenv("GRETA_TRACE_STAGE_LAYERS", "2")
	t.Setenv("GRETA_TRACE_B3_61_V", "1")
	t.Setenv("GRETA_TRACE_B3_61_POS_1", "1")
	out := t.TempDir()
	if code, _, stderr := runCmd(t, "trace", "--tokens", "1,5,6,7", "--max-tokens", "0", "--quiet", "--out", out); code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	recs := readTrace(t, filepath.Join(out, "custom_trace.jsonl"))
	// Positions: 1 (critical), 3 (last), and the windows cover the whole 4-token prompt.
	if len(recs) != 4 || recs[0].TensorName != "v" || recs[0].Layer != 2 {
		t.Errorf("records %+v, want v of layer 2 at 4 positions", recs)
	}
}

func TestTraceBadInput(t *testing.T) {
	out := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no out", []string{"--prompt", "p0_short"}, "--out DIR is required"},
		{"no prompt", []string{"--out", out}, "give exactly one of --prompt, --text and --tokens"},
		{"two prompts", []string{"--out", out, "--prompt", "p0_short", "--text", "hi"}, "give exactly one of"},
		{"unknown prompt", []string{"--out", out, "--prompt", "p7"}, `unknown standard prompt "p7"`},
		{"bad layers", []string{"--out", out, "--prompt", "p0_short", "--layers", "one"}, `--layers: layers "one"`},
		{"bad positions", []string{"--out", out, "--prompt", "p0_short", "--positions", "x"}, "--positions: positions"},
		{"bad route", []string{"--out", out, "--prompt", "p0_short", "--route", "both"}, `--route "both"`},
		{"bad backend", []string{"--out", out, "--prompt", "p0_short", "--backend", "tpu"}, `unknown backend "tpu" (known: `},
		{"bad tokens", []string{"--out", out, "--tokens", "1,x"}, `token 2 "x" is not a token id`},
		{"token outside vocabulary", []string{"--out", out, "--tokens", "1,99999"}, "token 99999 at position 1 is outside the vocabulary"},
		{"context overflow", []string{"--out", out, "--tokens", "1,2", "--max-tokens", "5000"}, "exceed the context length 2048"},
		{"bad inject", []string{"--out", out, "--prompt", "p0_short", "--inject", "stage=nope"}, "--inject: fault 1"},
		{"missing model", []string{"--out", out, "--prompt", "p0_short", "--model", filepath.Join(out, "none.gguf")}, "none.gguf"},
		{"stray argument", []string{"--out", out, "extra"}, `unexpected argument "extra"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCmd(t, append([]string{"trace", "--quiet"}, tc.args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if !strings.Contains(stderr, tc.want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
				t.Errorf("stderr %q (want one line containing %q), stdout %q", stderr, tc.want, stdout)
			}
		})
	}
}
