package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
)

// fakeEngine builds internal/fakeengine and returns an exec: backend running it with flags.
func fakeEngine(t *testing.T) func(flags string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fakeengine")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/gretabisect/gretabisect/internal/fakeengine").CombinedOutput(); err != nil {
		t.Fatalf("building the fake engine: %v\n%s", err, out)
	}
	return func(flags string) string { return "exec:" + bin + " --model {model} --prompt-file {prompt}" + flags }
}

func TestBisectExternalEngine(t *testing.T) {
	backend := fakeEngine(t)
	bisect := func(args ...string) (int, string, string) {
		return runCmd(t, append([]string{"bisect", "--prompts", "p0_short", "--quiet", "--model", "tiny", "--inject", "", "--out", t.TempDir()}, args...)...)
	}

	// An engine that only prefills matches the goldens with --max-tokens 0.
	code, stdout, stderr := bisect("--backend", backend(" --prefill-only"), "--max-tokens", "0")
	if code != exitOK || !strings.Contains(stdout, "| p0_short | - | - | (335 records match) | YES | - | N |") {
		t.Errorf("--max-tokens 0: exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	code, _, stderr = bisect("--backend", backend(" --prefill-only"))
	if code != exitUsage || !strings.Contains(stderr, "the generated tokens at positions 5..9 are missing") {
		t.Errorf("prefill only, 5 tokens planned: exit %d, stderr %q", code, stderr)
	}

	// A crash is a finding: its line, its row, exit 1.
	code, stdout, stderr = bisect("--backend", backend(" --crash-at attn_in,0"))
	for _, want := range []string{
		"p0_short: CRASH after layer 0 residual_pre_attn pos 4, before attn_in pos 0, the attention RMSNorm (exit status 1: ",
		"| p0_short | 0 | 0 | attn_in (not reached) | - | - | CRASH |", "| CRASH | 1 | 100% |",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("crash: stdout lacks %q\n%s", want, stdout)
		}
	}
	if code != exitDiverged || stderr != "" {
		t.Errorf("crash: exit %d, stderr %q", code, stderr)
	}

	// A hang, with --timeout (where it is localised depends on how far the engine got in
	// a second: gretatest's TestExecHang checks that).
	code, stdout, _ = bisect("--backend", backend(" --crash-at v,1 --hang"), "--timeout", "1s")
	if code != exitDiverged || !regexp.MustCompile(`(?m)^p0_short: HANG .*\(no exit within the 1s timeout, process group killed; `).MatchString(stdout) {
		t.Errorf("hang: exit %d, stdout:\n%s", code, stdout)
	}

	// Notes are printed even with --quiet.
	_, _, stderr = bisect("--backend", backend(" --seed-only"))
	if !strings.Contains(stderr, "note: p0_short: 670 of 670 records from exec carry neither a sketch nor raw rows") {
		t.Errorf("seed-only: stderr %q", stderr)
	}
	if code, _, stderr := bisect("--timeout", "soon"); code != exitUsage || !strings.HasPrefix(stderr, `gretabisect bisect: --timeout: timeout "soon"`) {
		t.Errorf("bad timeout: exit %d, stderr %q", code, stderr)
	}
}

func TestTraceExternalEngine(t *testing.T) {
	backend := fakeEngine(t)

	// Both routes on the external engine, compared; no generation.
	out := t.TempDir()
	code, stdout, stderr := runCmd(t, "trace", "--prompt", "p0_short", "--backend", backend(" --raw-only"), "--layers", "all",
		"--positions", "all", "--max-tokens", "0", "--route-check", "--quiet", "--out", out)
	want := "route-check: candidate route decode, baseline route prefill\n" +
		"policy exact: 1 prompt (1 match, 0 diverged, 0 missing); 660 records compared, 0 mismatched, 0 missing\n"
	if code != exitOK || stdout != want || stderr != "" {
		t.Errorf("route check: exit %d\nstdout %q\nwant %q\nstderr %q", code, stdout, want, stderr)
	}
	recs := readTrace(t, filepath.Join(out, "decode", "p0_short_trace.jsonl"))
	for _, r := range recs {
		if r.Route != golden.RouteDecode || r.Sketch == nil || !strings.HasPrefix(r.RawFile, "p0_short_rows/") {
			t.Fatalf("record %s: route %q, sketch %v, raw_file %q", golden.KeyOf(r), r.Route, r.Sketch != nil, r.RawFile)
		}
		if _, err := os.Stat(filepath.Join(out, "decode", r.RawFile)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "run", "p0_short.log")); err != nil {
		t.Error(err)
	}

	// A crash leaves its partial trace and its verdict.
	out = t.TempDir()
	code, stdout, _ = runCmd(t, "trace", "--prompt", "p0_short", "--backend", backend(" --crash-after 12 --partial-line"), "--quiet", "--out", out)
	want = "p0_short: CRASH after layer 0 attn_in pos 1, before attn_in pos 2, the attention RMSNorm (exit status 1: after 12 records: launch failed: an illegal memory access was encountered; 12 of 670 planned records written; log " +
		filepath.Join(out, "run", "p0_short.log") + ")\n"
	if code != exitDiverged || stdout != want {
		t.Errorf("crash: exit %d\nstdout %q\nwant   %q", code, stdout, want)
	}
	if recs := readTrace(t, filepath.Join(out, "p0_short_trace.jsonl")); len(recs) != 12 {
		t.Errorf("%d records kept, want 12", len(recs))
	}

	// An engine that ignores the route is caught.
	code, _, stderr = runCmd(t, "trace", "--prompt", "p0_short", "--backend", backend(" --ignore-route"), "--route", "decode", "--quiet", "--out", t.TempDir())
	if want := "the engine ignored GRETA_TRACE_ROUTE=decode: record (prompt_id=p0_short pos_id=0 layer=-1 tensor_name=embed_out) says route prefill"; code != exitUsage || !strings.Contains(stderr, want) {
		t.Errorf("route ignored: exit %d, stderr %q, want %q", code, stderr, want)
	}
	code, _, stderr = runCmd(t, "trace", "--prompt", "p0_short", "--backend", backend(" --raw-only"), "--raw", "--quiet", "--out", t.TempDir())
	if code != exitUsage || !strings.Contains(stderr, "--raw: an external engine writes raw rows itself") {
		t.Errorf("--raw: exit %d, stderr %q", code, stderr)
	}
}
