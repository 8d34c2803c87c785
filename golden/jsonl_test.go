package golden

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func line(prompt string, pos, layer int, tensor, hash string) string {
	b, _ := json.Marshal(Record{PromptID: prompt, PosID: pos, Layer: layer, TensorName: tensor, Hash: hash})
	return string(b)
}

func TestReadTrace(t *testing.T) {
	a, b := line("p", 0, -1, "embed_out", "h1"), line("p", 0, 0, "attn_in", "h2")
	tests := []struct {
		name    string
		content string
		want    []Key // nil: an error is expected
		wantErr string
	}{
		{"two records", a + "\n" + b + "\n", []Key{{"p", 0, -1, "embed_out"}, {"p", 0, 0, "attn_in"}}, ""},
		{"blank lines, CRLF, no final newline", "\n" + a + "\r\n\n  \n" + b, []Key{{"p", 0, -1, "embed_out"}, {"p", 0, 0, "attn_in"}}, ""},
		{"empty file", "", nil, "t_trace.jsonl: no records"},
		{"only blank lines", "\n \n\t\n", nil, "t_trace.jsonl: no records"},
		{"bad JSON on line 3", a + "\n\n{\"prompt_id\":\n", nil, "t_trace.jsonl:3: "},
		{"syntax error column", a + "\n" + `{"prompt_id":"p",,}`, nil, "t_trace.jsonl:2: bad JSON at column 18"},
		{"missing field", a + "\n" + `{"prompt_id":"p"}`, nil, `t_trace.jsonl:2: missing field "pos_id"`},
		{"duplicate key", a + "\n" + b + "\n" + a + "\n", nil, "t_trace.jsonl:3: duplicate key (prompt_id=p pos_id=0 layer=-1 tensor_name=embed_out) (first at line 1)"},
		{"line too long", a + "\n" + strings.Repeat(" ", MaxLineBytes+1) + "\n", nil, "t_trace.jsonl:2: line longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "t_trace.jsonl")
			writeFile(t, path, tc.content)
			tr, err := ReadTrace(path)
			if tc.want == nil {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("ReadTrace error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []Key
			for _, r := range tr.Records {
				got = append(got, KeyOf(r))
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteTraceRoundTrip(t *testing.T) {
	recs := []Record{
		{PromptID: "p", TokenID: 5, PosID: 0, Layer: -1, TensorName: "embed_out", Hash: HashRow([]float32{1, 2}), NZCount: 2,
			Sketch: NewSketch([]float32{1, 2}), Extra: map[string]json.RawMessage{"engine": json.RawMessage(`"x"`)}},
		{PromptID: "p", PosID: 0, Layer: 22, TensorName: "logits", Hash: "sha256:00", Top5Tokens: []int{1, 2, 3, 4, 5}},
	}
	path := TracePath(t.TempDir(), "p")
	if err := WriteTrace(path, recs); err != nil {
		t.Fatal(err)
	}
	tr, err := ReadTrace(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recs, tr.Records); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if tr.PromptID != "p" || tr.Path != path {
		t.Errorf("trace prompt %q path %q, want p and %s", tr.PromptID, tr.Path, path)
	}
	// Nothing but the trace is left in the folder: the temporary file was renamed.
	entries, _ := os.ReadDir(filepath.Dir(path))
	if len(entries) != 1 {
		t.Errorf("folder holds %d entries after WriteTrace, want 1", len(entries))
	}
}

func TestWriteFileAtomicKeepsOldContentOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "g.jsonl")
	writeFile(t, path, "old\n")
	err := WriteFileAtomic(path, func(w io.Writer) error {
		io.WriteString(w, "half")
		return errors.New("disk on fire")
	})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("WriteFileAtomic error %v, want the writer's", err)
	}
	b, _ := os.ReadFile(path)
	entries, _ := os.ReadDir(filepath.Dir(path))
	if string(b) != "old\n" || len(entries) != 1 {
		t.Errorf("after a failed write: content %q and %d entries, want the old content and no temporary file", b, len(entries))
	}
}

func TestReadDir(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, TracePath(dir, "b"), line("b", 0, 0, "v", "h")+"\n")
	writeFile(t, TracePath(dir, "a"), line("a", 0, 0, "v", "h")+"\n")
	writeFile(t, filepath.Join(dir, "README.md"), "not a trace")
	writeFile(t, filepath.Join(dir, "sub_trace.jsonl", "x"), "a folder is skipped")
	traces, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, tr := range traces {
		ids = append(ids, tr.PromptID)
	}
	if diff := cmp.Diff([]string{"a", "b"}, ids); diff != "" {
		t.Errorf("prompt ids (-want +got):\n%s", diff)
	}

	bad := t.TempDir()
	writeFile(t, TracePath(bad, "a"), line("a", 0, 0, "v", "h")+"\n"+line("x", 1, 0, "v", "h")+"\n")
	if _, err := ReadDir(bad); err == nil || !strings.Contains(err.Error(), `a_trace.jsonl:2: prompt_id "x" disagrees with the file name (want "a")`) {
		t.Errorf("ReadDir with a stray prompt_id: error %v", err)
	}
	if _, err := ReadDir(t.TempDir()); err == nil || !strings.Contains(err.Error(), "no *_trace.jsonl files") {
		t.Errorf("ReadDir of an empty folder: error %v", err)
	}
}

// FuzzReader feeds arbitrary bytes to the JSONL reader: it must return records or an error
// naming a line, never panic, and every record it returns must survive a write and re-read.
// Seeds live in testdata/fuzz/FuzzReader.
func FuzzReader(f *testing.F) {
	f.Add([]byte(seedSample + "\n"))
	f.Add([]byte(line("p", 1, 2, "attn_in", "h") + "\n\n" + line("p", 1, 3, "q", "h")))
	f.Add([]byte(`{"prompt_id":"p","pos_id":0,"layer":0,"tensor_name":"v","hash":"h","sketch":{"v":1,"n":2,"d":""}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), "fuzz")
		for i := 0; i < 1000; i++ {
			rec, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !strings.HasPrefix(err.Error(), "fuzz:") {
					t.Fatalf("error %q does not start with the name", err)
				}
				return
			}
			var buf bytes.Buffer
			w := NewWriter(&buf)
			if err := w.Write(rec); err != nil {
				t.Fatalf("record read but not writable: %v", err)
			}
			w.Flush()
			back, err := NewReader(&buf, "again").Next()
			if err != nil {
				t.Fatalf("re-reading %q: %v", buf.String(), err)
			}
			if KeyOf(back) != KeyOf(rec) || back.Hash != rec.Hash || len(back.Extra) != len(rec.Extra) {
				t.Fatalf("round trip changed %+v into %+v", rec, back)
			}
		}
	})
}
