package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

const seedDir = "../../golden/testdata/seed"

// writeTraceDir writes files (name -> content) into a new folder.
func writeTraceDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

const okLine = `{"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"attn_in","hash":"sha256:aa","nz_count":1}`

func TestAnalyzeSeedPair(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  []string
	}{
		{
			name:     "diverged, markdown from the extension",
			args:     []string{"--output", "report.md"},
			wantCode: exitDiverged,
			wantOut: []string{
				"p6_len_16: FIRST_FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash 3a7b2c1d.. want 9f00e1aa.., MAE n/a)",
				"p6_len_32: FIRST_FAIL pos=1652 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash ",
				"policy exact: 2 prompts (0 match, 2 diverged, 0 missing); 22 records compared, 4 mismatched, 0 missing",
			},
		},
		{
			name:     "tolerance says once that it fell back to hashes",
			args:     []string{"--output", "report.json", "--policy", "tolerance"},
			wantCode: exitDiverged,
			wantOut:  []string{"note: tolerance policy: 4 differing records (of 22 compared) carry no sketch or raw tensor"},
		},
		{
			name:     "a folder against itself matches",
			args:     []string{"--output", "report.html", "--input_dir", seedDir + "/baseline"},
			wantCode: exitOK,
			wantOut:  []string{"policy exact: 2 prompts (2 match, 0 diverged, 0 missing); 22 records compared, 0 mismatched, 0 missing"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), tc.args[1])
			args := append([]string{"analyze", "--input_dir", seedDir + "/candidate", "--baseline_dir", seedDir + "/baseline"}, tc.args...)
			args[6] = out
			code, stdout, stderr := runCLI(t, args...)
			if code != tc.wantCode || stderr != "" {
				t.Fatalf("exit %d, stderr %q; want exit %d and no stderr", code, stderr, tc.wantCode)
			}
			for _, w := range tc.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			b, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Ext(out) {
			case ".md":
				if !strings.Contains(string(b), "| p6_len_16 | 826 | 0 | residual_pre_attn | NO | n/a | YES |") {
					t.Errorf("markdown report lacks the seed's first row:\n%s", b)
				}
			case ".json":
				var rep struct {
					Policy  string
					Prompts []struct {
						PromptID  string `json:"prompt_id"`
						Status    string
						FirstFail *struct {
							PosID int `json:"pos_id"`
						} `json:"first_fail"`
					}
				}
				if err := json.Unmarshal(b, &rep); err != nil {
					t.Fatalf("JSON report: %v", err)
				}
				if rep.Policy != "tolerance" || len(rep.Prompts) != 2 || rep.Prompts[0].FirstFail == nil || rep.Prompts[0].FirstFail.PosID != 826 {
					t.Errorf("JSON report %+v: want policy tolerance, 2 prompts, first_fail at 826", rep)
				}
			case ".html":
				if !strings.HasPrefix(string(b), "<!DOCTYPE html>") || !strings.Contains(string(b), "<svg") {
					t.Errorf("HTML report does not start with a doctype or has no svg")
				}
			}
		})
	}
}

func TestAnalyzeFormatFlagOverridesExtension(t *testing.T) {
	out := filepath.Join(t.TempDir(), "report.txt")
	code, _, stderr := runCLI(t, "analyze", "--input_dir", seedDir+"/candidate", "--baseline_dir", seedDir+"/baseline", "--output", out, "--format", "json")
	if code != exitDiverged {
		t.Fatalf("exit %d (%s), want %d", code, stderr, exitDiverged)
	}
	b, _ := os.ReadFile(out)
	if !json.Valid(b) {
		t.Errorf("--format json wrote no JSON to %s", out)
	}
}

func TestAnalyzeBadInput(t *testing.T) {
	good := writeTraceDir(t, map[string]string{"p_trace.jsonl": okLine + "\n"})
	tests := []struct {
		name  string
		files map[string]string // candidate folder; nil: use the flags as given
		args  []string
		want  string // in the one stderr line
	}{
		{"no input_dir", nil, []string{"--baseline_dir", good, "--output", "r.md"}, "--input_dir is required"},
		{"no baseline_dir", nil, []string{"--input_dir", good, "--output", "r.md"}, "--baseline_dir is required"},
		{"no output", nil, []string{"--input_dir", good, "--baseline_dir", good}, "--output is required"},
		{"bad policy", nil, []string{"--input_dir", good, "--baseline_dir", good, "--output", "r.md", "--policy", "fuzzy"}, `unknown policy "fuzzy"`},
		{"bad format", nil, []string{"--input_dir", good, "--baseline_dir", good, "--output", "r.md", "--format", "pdf"}, `--format "pdf"`},
		{"stray argument", nil, []string{"--input_dir", good, "--baseline_dir", good, "--output", "r.md", "extra"}, `unexpected argument "extra"`},
		{"no folder", nil, []string{"--input_dir", "/nonexistent/x", "--baseline_dir", good, "--output", "r.md"}, "--input_dir: open /nonexistent/x"},
		{"no trace files", map[string]string{"notes.txt": "x"}, nil, "no *_trace.jsonl files"},
		{"bad JSON line", map[string]string{"p_trace.jsonl": okLine + "\n{\"prompt_id\": \n"}, nil, "p_trace.jsonl:2: "},
		{"empty file", map[string]string{"p_trace.jsonl": "\n\n"}, nil, "p_trace.jsonl: no records"},
		{"duplicate key", map[string]string{"p_trace.jsonl": okLine + "\n" + okLine + "\n"}, nil, "p_trace.jsonl:2: duplicate key (prompt_id=p pos_id=0 layer=0 tensor_name=attn_in) (first at line 1)"},
		{"prompt id disagrees with the file name", map[string]string{"q_trace.jsonl": okLine + "\n"}, nil, `prompt_id "p" disagrees with the file name (want "q")`},
		{"zero records compared", map[string]string{"p_trace.jsonl": strings.Replace(okLine, `"pos_id":0`, `"pos_id":1`, 1) + "\n"}, nil, "compared zero records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.files != nil {
				args = []string{"--input_dir", writeTraceDir(t, tc.files), "--baseline_dir", good, "--output", filepath.Join(t.TempDir(), "r.md")}
			}
			code, stdout, stderr := runCLI(t, append([]string{"analyze"}, args...)...)
			if code != exitUsage {
				t.Errorf("exit %d, want %d", code, exitUsage)
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
			lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "gretabisect analyze: ") || !strings.Contains(lines[0], tc.want) {
				t.Errorf("stderr %q: want one line \"gretabisect analyze: ...%s...\"", stderr, tc.want)
			}
		})
	}
}

func TestFormatOf(t *testing.T) {
	got := []string{formatOf("a.md"), formatOf("a.JSON"), formatOf("a.html"), formatOf("a.htm"), formatOf("report"), formatOf("a.txt")}
	want := []string{"md", "json", "html", "html", "md", "md"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("formatOf (-want +got):\n%s", diff)
	}
}
