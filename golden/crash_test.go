package golden

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// crashPlan is the plan of a 2-token prompt with one generated token, layer 0, stages
// embed_out, residual_pre_attn, attn_in and logits (layer 1), in the prefill route's order.
func crashPlan() []Key {
	k := func(pos, layer int, st Stage) Key { return Key{"p", pos, layer, st.String()} }
	return []Key{
		k(0, -1, EmbedOut), k(1, -1, EmbedOut),
		k(0, 0, ResidualPreAttn), k(1, 0, ResidualPreAttn), k(0, 0, AttnIn), k(1, 0, AttnIn),
		k(0, 1, Logits), k(1, 1, Logits),
		k(2, -1, EmbedOut), k(2, 0, ResidualPreAttn), k(2, 0, AttnIn), k(2, 1, Logits),
	}
}

func recordsOf(keys ...Key) []Record {
	out := make([]Record, len(keys))
	for i, k := range keys {
		out[i] = Record{PromptID: k.PromptID, PosID: k.PosID, Layer: k.Layer, TensorName: k.TensorName}
	}
	return out
}

func TestCrashLocate(t *testing.T) {
	plan := crashPlan()
	other := Key{"p", 0, 5, "residual_pre_attn"} // a record outside the plan
	tests := []struct {
		name    string
		crash   Crash
		written []Key
		line    string
		reached []bool // of the plan's keys
	}{
		{"stops at a stage", Crash{Reason: "exit status 1: RMSNorm (Attn) launch failed", Log: "run/p.log"}, plan[:4],
			"p: CRASH after layer 0 residual_pre_attn pos 1, before attn_in pos 0, the attention RMSNorm (exit status 1: RMSNorm (Attn) launch failed; 4 of 12 planned records written; log run/p.log)",
			[]bool{true, true, true, true, false, false, false, false, false, false, false, false}},
		{"same position elided", Crash{Reason: "signal: segmentation fault"}, plan[8:10],
			// a decode step after a prompt pass written elsewhere (out of order): the end
			// is after the last record written
			"p: CRASH after layer 0 residual_pre_attn pos 2, before attn_in, the attention RMSNorm (signal: segmentation fault; 2 of 12 planned records written)",
			[]bool{true, true, true, true, true, true, true, true, true, true, false, false}},
		{"nothing written", Crash{Reason: "exit status 2: bad flag"}, []Key{other},
			"p: CRASH before the first planned record, embed_out pos 0, the token embedding (exit status 2: bad flag; 0 of 12 planned records written)",
			make([]bool, 12)},
		{"everything written", Crash{Reason: "exit status 1: double free"}, plan,
			"p: CRASH after the last planned record, logits pos 2 (exit status 1: double free; 12 of 12 planned records written)",
			[]bool{true, true, true, true, true, true, true, true, true, true, true, true}},
		{"chunked prefill", Crash{Hang: true, Reason: "no exit within the 1s timeout"},
			// position 0 went through the whole pass, position 1 reached its embedding
			[]Key{plan[0], plan[2], plan[4], plan[6], plan[1]},
			"p: HANG after embed_out pos 1, before layer 0 residual_pre_attn, the residual stream entering the layer (no exit within the 1s timeout; 5 of 12 planned records written)",
			[]bool{true, true, true, false, true, false, true, false, false, false, false, false}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.crash
			c.Locate(plan, recordsOf(tc.written...))
			if got := c.Line("p"); got != tc.line {
				t.Errorf("line\n%s\nwant\n%s", got, tc.line)
			}
			var reached []bool
			for _, k := range plan {
				reached = append(reached, c.Reached(k))
			}
			if diff := cmp.Diff(tc.reached, reached); diff != "" {
				t.Errorf("reached (-want +got):\n%s", diff)
			}
			if c.Error() != tc.crash.Reason {
				t.Errorf("Error() = %q", c.Error())
			}
		})
	}
}

func TestReadCrashedTrace(t *testing.T) {
	dir := t.TempDir()
	var whole bytes.Buffer
	w := NewWriter(&whole)
	for _, r := range recordsOf(crashPlan()[:3]...) {
		r.Hash = "sha256:00"
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	w.Flush()
	lines := whole.String()
	last := strings.LastIndex(strings.TrimSuffix(lines, "\n"), "\n") + 1
	tests := []struct {
		name    string
		content *string // nil: no file
		n       int
		cut     bool
		err     string
	}{
		{"complete", &lines, 3, false, ""},
		{"last line cut", ptr(lines[:last+20]), 2, true, ""},
		{"last line whole, no newline", ptr(strings.TrimSuffix(lines, "\n")), 3, false, ""},
		{"empty", ptr(""), 0, false, ""},
		{"no file", nil, 0, false, ""},
		{"broken line before the last", ptr(lines[:20] + "\n" + lines), 0, false, "bad JSON"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+TraceSuffix)
			if tc.content != nil {
				if err := os.WriteFile(path, []byte(*tc.content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			tr, cut, err := ReadCrashedTrace(path)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("error %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil || len(tr.Records) != tc.n || cut != tc.cut {
				t.Errorf("%d records, cut %v, error %v; want %d, %v", len(tr.Records), cut, err, tc.n, tc.cut)
			}
		})
	}
	// Elsewhere a cut line is an error.
	path := filepath.Join(dir, "cut"+TraceSuffix)
	os.WriteFile(path, []byte(lines[:last+20]), 0o644)
	if _, err := ReadTrace(path); err == nil {
		t.Error("ReadTrace accepted a trace whose last line is cut short")
	}
}

// TestCrashReports checks how the reports show a run that crashed before anything diverged
// and one that diverged, then crashed.
func TestCrashReports(t *testing.T) {
	plan := crashPlan()
	row := []float32{1, 2}
	recs := func(keys []Key, scale float32) []Record {
		out := recordsOf(keys...)
		for i := range out {
			r := []float32{row[0] * scale, row[1]}
			out[i].Hash, out[i].NZCount, out[i].Sketch = HashRow(r), 2, NewSketch(r)
		}
		return out
	}
	base := recs(plan, 1)
	// result compares the first written records of a run, scaled, and marks them crashed.
	result := func(written int, scale float32, c *Crash) *PromptResult {
		c.Locate(plan, base[:written])
		r, err := CompareRecords(recs(plan[:written], scale), base[:written], Tolerance)
		if err != nil {
			t.Fatal(err)
		}
		r.Prompts[0].SetCrash(c)
		return r.Prompts[0]
	}
	a := result(4, 1, &Crash{Reason: "exit status 1: boom", Log: "run/p.log"})
	if a.Status != StatusCrash {
		t.Fatalf("status %q", a.Status)
	}
	hung := &Crash{Hang: true, Reason: "no exit within the 1s timeout"}
	hung.Locate(plan, nil)
	b := CrashResult("q", hung)
	c := result(6, 2, &Crash{Reason: "exit status 1: late"})
	if c.Status != StatusDiverged {
		t.Fatalf("status %q, want diverged", c.Status)
	}
	rep := &Report{Policy: Tolerance, Prompts: []*PromptResult{a, b, c}}

	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"(0 match, 1 diverged, 0 missing, 2 crashed)",
		"| ROUTING/SELECTION | 1 | 33.3% |", "| CRASH | 1 | 33.3% |", "| HANG | 1 | 33.3% |",
		"## Runs that ended early\n\n- p: CRASH after layer 0 residual_pre_attn pos 1, before attn_in pos 0, the attention RMSNorm (exit status 1: boom; 4 of 12 planned records written; log run/p.log)\n" +
			"- q: HANG before the first planned record, embed_out pos 0, the token embedding (no exit within the 1s timeout; 0 of 12 planned records written)\n" +
			"- p: CRASH after layer 0 attn_in pos 1, before logits pos 0, the final RMSNorm and output projection (exit status 1: late; 6 of 12 planned records written)\n",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("Markdown lacks %q:\n%s", want, md.String())
		}
	}

	var lines bytes.Buffer
	rep.WriteLines(&lines)
	if got := strings.Split(lines.String(), "\n"); len(got) != 6 || !strings.HasPrefix(got[0], "p: CRASH") ||
		!strings.HasPrefix(got[1], "q: HANG") || !strings.HasPrefix(got[2], "p: FIRST_FAIL pos=0 layer=-1 tensor=embed_out") ||
		!strings.HasPrefix(got[3], "p: CRASH after layer 0 attn_in") {
		t.Errorf("lines:\n%s", lines.String())
	}

	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var out struct {
		Prompts []struct {
			Status string
			Crash  *struct {
				Verdict          string
				Planned, Written int
				Last, Next       *struct {
					PosID      int    `json:"pos_id"`
					Layer      int    `json:"layer"`
					TensorName string `json:"tensor_name"`
				}
			}
		}
		Categories map[string]int
	}
	if err := json.Unmarshal(js.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	p := out.Prompts[0]
	if p.Status != "crash" || p.Crash == nil || p.Crash.Verdict != "CRASH" || p.Crash.Written != 4 || p.Crash.Planned != 12 ||
		p.Crash.Last.TensorName != "residual_pre_attn" || p.Crash.Next.TensorName != "attn_in" || p.Crash.Next.Layer != 0 {
		t.Errorf("JSON prompt %+v", p)
	}
	if q := out.Prompts[1]; q.Status != "hang" || q.Crash.Last != nil || q.Crash.Next.TensorName != "embed_out" {
		t.Errorf("JSON hang %+v", q)
	}
	if out.Categories["CRASH"] != 1 || out.Categories["HANG"] != 1 || out.Categories["ROUTING/SELECTION"] != 1 {
		t.Errorf("JSON categories %v", out.Categories)
	}

	var html bytes.Buffer
	if err := rep.WriteHTML(&html); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"q: HANG before the first planned record", "<td>CRASH</td>"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
}
