package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
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

// TestBisectArtifactsNameTheOrigin checks what a CI runner keeps: every report of a bisect
// whose fault is in an untraced layer names the isolated origin (JSON first_fail and
// categories, the HTML headline and heatmap row), and analyze on the artifacts alone agrees.
func TestBisectArtifactsNameTheOrigin(t *testing.T) {
	out := t.TempDir()
	var stdout, stderr bytes.Buffer
	code := dispatch([]string{"bisect", "--out", out, "--model", "tiny", "--backend", "cpu", "--quiet", "--prompts", "p0_short",
		"--inject", "stage=v,layer=3,pos>=2,scale=1.01"}, &stdout, &stderr)
	if code != exitDiverged {
		t.Fatalf("bisect: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	dirs, err := filepath.Glob(filepath.Join(out, "*", "b3_61"))
	if err != nil || len(dirs) != 1 {
		t.Fatalf("artifacts: %v %v", dirs, err)
	}
	art := dirs[0]
	wantOrigin := func(t *testing.T, path string) {
		t.Helper()
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var rep struct {
			Prompts []struct {
				FirstFail struct {
					PosID      int    `json:"pos_id"`
					Layer      int    `json:"layer"`
					TensorName string `json:"tensor_name"`
					Category   string `json:"category"`
				} `json:"first_fail"`
				FirstTraced struct {
					Layer int `json:"layer"`
				} `json:"first_traced"`
			} `json:"prompts"`
			Categories map[string]int `json:"categories"`
		}
		if err := json.Unmarshal(b, &rep); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		f := rep.Prompts[0].FirstFail
		if f.PosID != 2 || f.Layer != 3 || f.TensorName != "v" || f.Category != "ATTN_KERNEL_INPUTS" {
			t.Errorf("%s: first_fail %+v, want pos 2 layer 3 v", path, f)
		}
		if rep.Prompts[0].FirstTraced.Layer != 4 {
			t.Errorf("%s: first_traced layer %d, want 4", path, rep.Prompts[0].FirstTraced.Layer)
		}
		if rep.Categories["ATTN_KERNEL_INPUTS"] != 1 || rep.Categories["ROUTING/SELECTION"] != 0 {
			t.Errorf("%s: categories %v", path, rep.Categories)
		}
	}
	wantOrigin(t, filepath.Join(art, "report.json"))
	wantOrigin(t, filepath.Join(art, "p0_short_report.json"))
	html, err := os.ReadFile(filepath.Join(art, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{">p0_short: FIRST_FAIL pos=2 layer=3 tensor=v category=ATTN_KERNEL_INPUTS", ">layer 3</text>", "run 1: planned positions</text>"} {
		if !strings.Contains(string(html), s) {
			t.Errorf("report.html lacks %q", s)
		}
	}

	// analyze on the artifacts alone: the extra runs beside traces/ are merged in.
	stdout.Reset()
	stderr.Reset()
	report := filepath.Join(t.TempDir(), "again.json")
	code = dispatch([]string{"analyze", "--input_dir", filepath.Join(art, "traces"), "--baseline_dir", filepath.Join(art, "baseline"),
		"--output", report}, &stdout, &stderr)
	if code != exitDiverged || !strings.HasPrefix(stdout.String(), "p0_short: FIRST_FAIL pos=2 layer=3 tensor=v ") {
		t.Fatalf("analyze: exit %d\n%s%s", code, stdout.String(), stderr.String())
	}
	wantOrigin(t, report)
	// Without them, analyze names the first traced failure, as the traces alone show it.
	stdout.Reset()
	code = dispatch([]string{"analyze", "--input_dir", filepath.Join(art, "traces"), "--baseline_dir", filepath.Join(art, "baseline"),
		"--output", report, "--extra_dir", "none"}, &stdout, &stderr)
	if code != exitDiverged || !strings.HasPrefix(stdout.String(), "p0_short: FIRST_FAIL pos=2 layer=4 ") {
		t.Errorf("analyze --extra_dir none: exit %d\n%s", code, stdout.String())
	}
}
