package golden

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/sebdah/goldie/v2"

	"github.com/gretabisect/gretabisect/internal/testutil"
)

// assertGolden compares got with testdata/<name>.golden through goldie. A missing golden
// file fails with the command that records it, instead of goldie's generic hint.
func assertGolden(t testing.TB, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if _, err := os.Stat(path); os.IsNotExist(err) && !testutil.Update() {
		t.Fatalf("golden file %s does not exist; record it with: go test ./golden -run '^%s$' -update",
			path, strings.SplitN(t.Name(), "/", 2)[0])
	}
	goldie.New(t).Assert(t, name, got)
}

// TestReportGoldens renders the seed pairs and the demo comparison in every format and
// compares with the goldens.
func TestReportGoldens(t *testing.T) {
	dirs := func(dir string, p Policy) func(t *testing.T) *Report {
		return func(t *testing.T) *Report {
			return compareDirs(t, filepath.Join("testdata", dir, "candidate"), filepath.Join("testdata", dir, "baseline"), p)
		}
	}
	tests := []struct {
		name   string
		report func(t *testing.T) *Report
	}{
		{"seed_exact", dirs("seed", Exact)},
		{"seed_tolerance", dirs("seed", Tolerance)},
		{"seed_raw_exact", dirs("seed_raw", Exact)},
		{"demo_tolerance", demoReport},
		{"origin_exact", func(t *testing.T) *Report { return newBisectionFixture().report(t) }},
		{"own_replay", ownFixture},
	}
	for _, tc := range tests {
		rep := tc.report(t)
		for _, format := range []string{FormatMarkdown, FormatJSON, FormatHTML} {
			t.Run(tc.name+"."+format, func(t *testing.T) {
				var b bytes.Buffer
				if err := rep.Write(&b, format); err != nil {
					t.Fatal(err)
				}
				assertGolden(t, "report/"+tc.name+"."+format, b.Bytes())
			})
		}
	}
}

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (f *fatalRecorder) Helper()      {}
func (f *fatalRecorder) Name() string { return "TestSomething/case" }
func (f *fatalRecorder) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestAssertGoldenNamesTheRecordCommand(t *testing.T) {
	if testutil.Update() {
		t.Skip("with -update a missing golden is recorded, not reported")
	}
	rec := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		assertGolden(rec, "report/no_such_golden", []byte("x"))
	}()
	<-done
	const want = "golden file testdata/report/no_such_golden.golden does not exist; record it with: go test ./golden -run '^TestSomething$' -update"
	if rec.msg != want {
		t.Errorf("message %q, want %q", rec.msg, want)
	}
}

// FuzzCompareAndReport reads two arbitrary JSONL inputs as candidate and baseline, compares
// whatever records they hold under each policy and renders every report format: no input
// may panic, and a comparison that succeeds must render.
func FuzzCompareAndReport(f *testing.F) {
	f.Add([]byte(seedSample), []byte(strings.Replace(seedSample, "3a7b2c1d", "9f00e1aa", 1)))
	f.Add([]byte(line("p", 0, 0, "attn_in", "a")+"\n"+line("p", 0, 22, "logits", "b")), []byte(line("p", 0, 0, "attn_in", "c")))
	f.Add([]byte(`{"prompt_id":"p","pos_id":0,"layer":-9223372036854775808,"tensor_name":"v","hash":"h","token_id":1}`),
		[]byte(`{"prompt_id":"p","pos_id":0,"layer":-9223372036854775808,"tensor_name":"v","hash":"g","token_id":2}`))
	read := func(data []byte) []Record {
		var recs []Record
		r := NewReader(bytes.NewReader(data), "fuzz")
		for {
			rec, err := r.Next()
			if err != nil {
				return recs
			}
			recs = append(recs, rec)
		}
	}
	f.Fuzz(func(t *testing.T, cand, base []byte) {
		c, b := read(cand), read(base)
		for _, p := range []Policy{Exact, Tolerance} {
			rep, err := CompareRecords(c, b, p)
			if err != nil {
				continue
			}
			for _, format := range []string{FormatMarkdown, FormatJSON, FormatHTML} {
				if err := rep.Write(io.Discard, format); err != nil {
					t.Fatalf("%s report: %v", format, err)
				}
			}
			for _, pr := range rep.Prompts {
				pr.Line()
			}
		}
	})
}
