//go:build unix

package execengine

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// script writes an engine as a shell script and returns its command line.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "engine.sh")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// testRun is a run of a 3-token prompt on a 2-layer model: layer 0, every stage, every
// position, one generated token.
func testRun(t *testing.T) Run {
	plan := trace.Plan{Layers: []int{0}, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 1}
	return Run{PromptID: "p", Tokens: []int32{1, 7, 9}, Sel: plan.Resolve(2, 3), MaxNewTokens: 1, Log: filepath.Join(t.TempDir(), "run", "p.log")}
}

// record is a record of run p whose row is row.
func record(k golden.Key, row []float32) golden.Record {
	return golden.Record{PromptID: k.PromptID, PosID: k.PosID, Layer: k.Layer, TensorName: k.TensorName,
		Hash: golden.HashRow(row), NZCount: golden.NonZero(row), Sketch: golden.NewSketch(row)}
}

// writeRecords writes recs as a trace file at path, the last line cut to cut bytes when
// cut > 0, and returns the path.
func writeRecords(t *testing.T, path string, recs []golden.Record, cut int) string {
	t.Helper()
	var b strings.Builder
	for i, r := range recs {
		line, err := r.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if i == len(recs)-1 && cut > 0 {
			b.Write(line[:cut])
			break
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// alive reports whether process pid exists (and is not a zombie left to reap).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return syscall.Kill(pid, 0) == nil
	}
	f := strings.Fields(string(stat))
	return len(f) > 2 && f[2] != "Z"
}

func TestTimeoutKillsTheProcessGroup(t *testing.T) {
	pids := filepath.Join(t.TempDir(), "pids")
	// The engine starts a child, prints, writes one record and hangs.
	src := writeRecords(t, filepath.Join(t.TempDir(), "src.jsonl"),
		[]golden.Record{record(golden.Key{PromptID: "p", PosID: 0, Layer: -1, TensorName: "embed_out"}, []float32{1, 2})}, 0)
	cmd, err := New(script(t, fmt.Sprintf(`sleep 300 &
echo "$$ $!" > %s
cp %s "$GRETA_TRACE_OUT_DIR/p_trace.jsonl"
echo "waiting on a queue" >&2
sleep 300
`, pids, src)), "tiny", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	r := testRun(t)
	start := time.Now()
	out, err := cmd.Trace(r)
	took := time.Since(start)
	var crash *golden.Crash
	if !errors.As(err, &crash) || !crash.Hang {
		t.Fatalf("error %v, want a hang", err)
	}
	t.Logf("killed after %v (timeout 2s)", took)
	if took > 6*time.Second {
		t.Errorf("took %v to end a run with a 2s timeout", took)
	}
	want := "no exit within the 2s timeout, process group killed; last output: waiting on a queue"
	if crash.Reason != want || crash.Log != r.Log {
		t.Errorf("reason %q log %q, want %q and %q", crash.Reason, crash.Log, want, r.Log)
	}
	if len(out.Records) != 1 {
		t.Errorf("%d records, want the one written before the hang", len(out.Records))
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range strings.Fields(string(b)) {
		pid, _ := strconv.Atoi(f)
		// The group was killed before Trace returned; give the kernel a moment to reap.
		for i := 0; i < 50 && alive(pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if alive(pid) {
			t.Errorf("process %d is still running", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func TestCrashKeepsLogAndPartialTrace(t *testing.T) {
	k := func(pos, layer int, st string) golden.Key {
		return golden.Key{PromptID: "p", PosID: pos, Layer: layer, TensorName: st}
	}
	recs := []golden.Record{
		record(k(0, -1, "embed_out"), []float32{1}), record(k(1, -1, "embed_out"), []float32{2}),
		record(k(0, 0, "residual_pre_attn"), []float32{3}), record(k(1, 0, "residual_pre_attn"), []float32{4}),
	}
	src := writeRecords(t, filepath.Join(t.TempDir(), "src.jsonl"), recs, 40)
	cmd, err := New(script(t, fmt.Sprintf(`echo "loading model $1"
cp %s "$GRETA_TRACE_OUT_DIR/$GRETA_PROMPT_ID"_trace.jsonl
echo "RMSNorm (Attn) launch failed: an illegal memory access was encountered" >&2
exit 3
`, src))+" {model}", "tiny", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := testRun(t)
	for range 2 { // the log gathers every run
		out, err := cmd.Trace(r)
		var crash *golden.Crash
		if !errors.As(err, &crash) || crash.Hang {
			t.Fatalf("error %v, want a crash", err)
		}
		if want := "exit status 3: RMSNorm (Attn) launch failed: an illegal memory access was encountered"; crash.Reason != want {
			t.Errorf("reason %q, want %q", crash.Reason, want)
		}
		var got []golden.Key
		for _, r := range out.Records {
			got = append(got, golden.KeyOf(r))
		}
		if diff := cmp.Diff([]golden.Key{k(0, -1, "embed_out"), k(1, -1, "embed_out"), k(0, 0, "residual_pre_attn")}, got); diff != "" {
			t.Errorf("records read (-want +got):\n%s", diff)
		}
		if len(out.Notes) != 1 || !strings.Contains(out.Notes[0], "cut short") {
			t.Errorf("notes %q, want one on the cut line", out.Notes)
		}
	}
	log, err := os.ReadFile(r.Log)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"== gretabisect: prompt p, route prefill: ", "loading model tiny\n", "launch failed", "== exit status 3 after "} {
		if strings.Count(string(log), want) != 2 {
			t.Errorf("log holds %q %d times, want twice:\n%s", want, strings.Count(string(log), want), log)
		}
	}
}

func TestCleanExitWithoutTrace(t *testing.T) {
	cmd, err := New(script(t, "exit 0\n"), "tiny", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cmd.Trace(testRun(t))
	var crash *golden.Crash
	if err == nil || errors.As(err, &crash) || !strings.Contains(err.Error(), "exited 0 but wrote no usable trace") {
		t.Errorf("error %v, want a plain error on the missing trace", err)
	}
	cmd, _ = New(filepath.Join(t.TempDir(), "absent"), "tiny", time.Minute)
	if _, err := cmd.Trace(testRun(t)); err == nil || errors.As(err, &crash) {
		t.Errorf("error %v, want a plain error for a command that cannot start", err)
	}
}

// TestPlanFile checks that the plan file and the seed's variables describe the same rows,
// and that an engine reading either selects exactly the run's rows.
func TestPlanFile(t *testing.T) {
	dump := t.TempDir()
	cmd, err := New(script(t, fmt.Sprintf(`cp "$GRETA_TRACE_PLAN" %[1]s/plan.json
env | grep '^GRETA_' | sort > %[1]s/env
exit 1
`, dump)), "tiny", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	plan := trace.DefaultPlan()
	plan.MaxNewTokens = 2
	const nLayer, nPrompt = 10, 60
	r := Run{PromptID: "p", Tokens: make([]int32, nPrompt), Sel: plan.Resolve(nLayer, nPrompt), MaxNewTokens: 2, Route: golden.RouteDecode,
		Faults: []engine.Fault{{Stage: golden.V, Layer: 5, PosMin: 16, PosMax: -1, Scale: 1.5}}}
	t.Setenv("GRETA_MODEL", "not for the engine")
	if _, err := cmd.Trace(r); err == nil {
		t.Fatal("no error from an engine that exits 1")
	}
	env, err := os.ReadFile(filepath.Join(dump, "env"))
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.Split(strings.TrimSpace(string(env)), "\n")
	for _, kv := range []string{"GRETA_B3_61=1", "GRETA_TRACE_STAGE=1", "GRETA_TRACE_STAGE_LAYERS=0,1,2,4,8",
		"GRETA_TRACE_B3_61_ATTN_CTX=1", "GRETA_TRACE_B3_61_POS_59=1", "GRETA_TRACE_B3_61_POS_61=1",
		"GRETA_MAX_NEW_TOKENS=2", "GRETA_PROMPT_ID=p", "GRETA_TRACE_ROUTE=decode", "GRETA_INJECT=stage=v,layer=5,pos>=16,scale=1.5"} {
		if !slices.Contains(vars, kv) {
			t.Errorf("environment lacks %s", kv)
		}
	}
	if slices.ContainsFunc(vars, func(kv string) bool { return strings.HasPrefix(kv, "GRETA_MODEL=") }) {
		t.Error("the engine got the caller's GRETA_MODEL")
	}

	// The seed's way: the variables applied to a plan of both phases.
	fromEnv, err := trace.PlanFromEnv(trace.Plan{Prefill: true, Decode: true, MaxNewTokens: 2}, vars)
	if err != nil {
		t.Fatal(err)
	}
	// The one-step way: the plan file.
	pf, err := ReadPlanFile(filepath.Join(dump, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	if pf.PromptID != "p" || pf.PromptTokens != nPrompt || pf.MaxNewTokens != 2 || pf.Route != "decode" ||
		pf.Inject != "stage=v,layer=5,pos>=16,scale=1.5" || !strings.HasSuffix(pf.TraceFile, "/p_trace.jsonl") {
		t.Errorf("plan file %+v", pf)
	}
	fromFile, err := pf.Plan()
	if err != nil {
		t.Fatal(err)
	}
	want := r.Sel
	for name, p := range map[string]trace.Plan{"seed variables": fromEnv, "plan file": fromFile} {
		got := p.Resolve(nLayer, nPrompt)
		order := golden.RouteOrder(golden.RoutePrefill, nPrompt)
		if diff := cmp.Diff(want.Keys("p", order), got.Keys("p", order)); diff != "" {
			t.Errorf("%s: rows (-want +got):\n%s", name, diff)
		}
	}
}

// TestRawRows checks that rows named by raw_file are sketched while they exist, kept under
// RowsDir when asked (the kept trace stays analyzable), dropped otherwise, and left out
// with a note when they do not match their record.
func TestRawRows(t *testing.T) {
	src := t.TempDir()
	rows := map[string][]float32{"a.npy": {1, 2, 3}, "sub/b.npy": {4, 5, 6}, "c.npy": {7, 8, 9}}
	for name, row := range rows {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(src, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := golden.WriteNpyFile(filepath.Join(src, name), nil, row); err != nil {
			t.Fatal(err)
		}
	}
	k := func(pos int) golden.Key {
		return golden.Key{PromptID: "p", PosID: pos, Layer: -1, TensorName: "embed_out"}
	}
	seedOnly := func(key golden.Key, row []float32, raw string) golden.Record {
		r := record(key, row)
		r.Sketch, r.RawFile = nil, raw
		return r
	}
	recs := []golden.Record{
		seedOnly(k(0), rows["a.npy"], "a.npy"),
		seedOnly(k(1), rows["sub/b.npy"], "sub/b.npy"),
		seedOnly(k(2), []float32{0, 0, 1}, "c.npy"), // the row is not the one hashed
		seedOnly(k(3), []float32{1}, "gone.npy"),
	}
	writeRecords(t, filepath.Join(src, "p_trace.jsonl"), recs, 0)
	cmd, err := New(script(t, fmt.Sprintf(`cp -r %s/. "$GRETA_TRACE_OUT_DIR"`, src)), "tiny", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, keep := range []bool{true, false} {
		r := testRun(t)
		if keep {
			r.RowsDir = t.TempDir()
		}
		out, err := cmd.Trace(r)
		if err != nil {
			t.Fatal(err)
		}
		got := out.Records
		for i, want := range []bool{true, true, false, false} { // sized
			if (got[i].Sketch != nil) != want {
				t.Errorf("keep %v: record %d sketched %v, want %v", keep, i, got[i].Sketch != nil, want)
			}
		}
		if d, err := got[0].Sketch.Estimate(golden.NewSketch(rows["a.npy"])); err != nil || d.RelL2 != 0 {
			t.Errorf("sketch of a.npy: %v %v", d, err)
		}
		if len(out.Notes) != 1 || !strings.Contains(out.Notes[0], "2 raw_file rows left out") {
			t.Errorf("notes %q", out.Notes)
		}
		wantRaw := []string{"", "", "", ""}
		if keep {
			wantRaw = []string{"p_rows/a.npy", "p_rows/sub/b.npy", "", ""}
		}
		for i, w := range wantRaw {
			if got[i].RawFile != w {
				t.Errorf("keep %v: record %d raw_file %q, want %q", keep, i, got[i].RawFile, w)
			}
		}
		if !keep {
			continue
		}
		// The kept trace compares exactly through its rows.
		path := golden.TracePath(r.RowsDir, "p")
		if err := golden.WriteTrace(path, got); err != nil {
			t.Fatal(err)
		}
		tr, err := golden.ReadTrace(path)
		if err != nil {
			t.Fatal(err)
		}
		rep, err := golden.Compare([]*golden.Trace{tr}, []*golden.Trace{tr}, golden.Tolerance)
		if err != nil || !rep.OK() {
			t.Errorf("kept trace against itself: %v %v", rep, err)
		}
	}
}

func TestParseTimeout(t *testing.T) {
	for in, want := range map[string]time.Duration{"90": 90 * time.Second, "1m30s": 90 * time.Second, "0": 0, " 30m ": 30 * time.Minute} {
		if got, err := ParseTimeout(in); err != nil || got != want {
			t.Errorf("ParseTimeout(%q) = %v, %v, want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "-5s", "-1"} {
		if _, err := ParseTimeout(in); err == nil {
			t.Errorf("ParseTimeout(%q): no error", in)
		}
	}
}
