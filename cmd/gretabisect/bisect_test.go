package main

import (
	"bytes"
	"strings"
	"testing"

	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

func TestBisectCommand(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string // substrings
		stderrLine string   // the one line on stderr when the command must fail (a prefix)
	}{
		{"clean", []string{"--prompts", "p0_short", "--quiet"}, exitOK,
			[]string{"| p0_short | - | - | (670 records match) | YES | - | N |", "| ATTN_KERNEL_INPUTS | 0 | 0% |"}, ""},
		{"inject", []string{"--prompts", "p0_short", "--quiet", "--inject", "stage=v,layer=3,pos>=2,scale=1.01"}, exitDiverged,
			[]string{"p0_short: FIRST_FAIL pos=2 layer=3 tensor=v category=ATTN_KERNEL_INPUTS (hash ",
				"| p0_short | 2 | 3 | v | NO |", "Y (isolated) |", "| ATTN_KERNEL_INPUTS | 1 | 100% |",
				"p0_short: origin pos=2 layer=3 tensor=v category=ATTN_KERNEL_INPUTS, isolated in 1 extra run (1 over layers, 0 over positions)"}, ""},
		{"bad inject", []string{"--inject", "stage=x"}, exitUsage, nil,
			`gretabisect bisect: --inject: fault 1 "stage=x": field "stage": unknown stage "x"`},
		{"bad prompt", []string{"--prompts", "p9"}, exitUsage, nil,
			`gretabisect bisect: --prompts: unknown prompt "p9" (known: p0_short, p6_len_16, p6_len_32)`},
		{"bad backend", []string{"--prompts", "p0_short", "--backend", "nope"}, exitUsage, nil,
			`gretabisect bisect: backend "nope": engine: unknown backend "nope" (known: cpu`},
		{"missing golden", []string{"--prompts", "p0_short", "--quiet", "--golden", "/nonexistent"}, exitUsage, nil,
			"gretabisect bisect: no golden trace /nonexistent/cpu/tiny/p0_short_trace.jsonl; record it with: gretabisect bisect --update --backend cpu --golden /nonexistent --model tiny --prompts p0_short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// Explicit defaults: the GRETA_* environment of the test process must not matter.
			args := append([]string{"bisect", "--out", t.TempDir(), "--model", "tiny", "--backend", "cpu", "--inject", ""}, tt.args...)
			code := dispatch(args, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
			for _, s := range tt.stdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
			if tt.stderrLine != "" {
				got := strings.TrimSuffix(stderr.String(), "\n")
				if strings.Contains(got, "\n") || !strings.HasPrefix(got, tt.stderrLine) {
					t.Errorf("stderr = %q, want one line starting %q", got, tt.stderrLine)
				}
			}
		})
	}
}

func TestBisectCommandUpdate(t *testing.T) {
	dir := t.TempDir()
	run := func(args ...string) (int, string) {
		var stdout, stderr bytes.Buffer
		code := dispatch(append([]string{"bisect", "--quiet", "--prompts", "p0_short", "--golden", dir, "--out", t.TempDir(),
			"--model", "tiny", "--backend", "cpu", "--inject", ""}, args...), &stdout, &stderr)
		return code, stderr.String()
	}
	if code, stderr := run("--update"); code != exitOK {
		t.Fatalf("--update: exit %d: %s", code, stderr)
	}
	if code, stderr := run(); code != exitOK {
		t.Errorf("compare with the recorded golden: exit %d: %s", code, stderr)
	}
	code, stderr := run("--update", "--inject", "stage=v,scale=2")
	if code != exitUsage || !strings.HasPrefix(stderr, "gretabisect bisect: refusing to record "+dir) {
		t.Errorf("--update --inject: exit %d, stderr %q", code, stderr)
	}
}
