package golden

import (
	"bytes"
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
