package gretatest

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/synth"
	"github.com/gretabisect/gretabisect/internal/testutil"
)

// buildFakeEngine builds internal/fakeengine once per test binary.
func buildFakeEngine(t *testing.T) string { return testutil.FakeEngine(t) }

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveFakeEngine()
	os.Exit(code)
}

// execSetup returns the tiny model and the fake engine's command line.
func execSetup(t *testing.T) (*model.Model, string) {
	bin := buildFakeEngine(t)
	m, err := model.Open(model.TinySpec)
	if err != nil {
		t.Fatal(err)
	}
	return m, "exec:" + bin + " --model {model} --prompt-file {prompt}"
}

// execOptions compares the fake engine (with extra flags) with the committed CPU goldens of
// the tiny model, artifacts under art.
func execOptions(m *model.Model, backend, art string, extra ...Option) []Option {
	return append([]Option{LoadedModel(model.TinySpec, m), Backend(backend), Env(func(string) string { return "" }),
		Artifacts(art), Update(false)}, extra...)
}

// maskArtifacts replaces the artifacts folder and the date in a message.
func maskArtifacts(msg, art string) string {
	return masked(msg, map[string]string{art: "$ART"})
}

// TestExecBackend runs an external engine through GRETA_BACKEND's exec: form: clean, it
// matches the CPU goldens under tolerance; with a planted bug, self-bisection (which re-runs
// the engine with other plans) names the bug, whether the engine reads the seed's variables
// or the plan file.
func TestExecBackend(t *testing.T) {
	m, backend := execSetup(t)
	for _, mode := range []string{"", " --plan-file"} {
		t.Run("clean"+mode, func(t *testing.T) {
			tb := &fakeTB{name: "TestExecBackend"}
			rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+mode, t.TempDir())...)
			pr := rep.Prompts[0]
			if len(tb.errors) != 0 {
				t.Fatalf("errors: %q", tb.errors)
			}
			if pr.Device != "exec" || pr.Policy != "tolerance" || !strings.HasSuffix(pr.Baseline, filepath.Join("cpu", "tiny", "p0_short_trace.jsonl")) || pr.Compared != 670 {
				t.Errorf("device %q policy %q baseline %q compared %d", pr.Device, pr.Policy, pr.Baseline, pr.Compared)
			}
		})
		t.Run("planted bug"+mode, func(t *testing.T) {
			p16, err := prompts.Standard(prompts.P6Len16, m.Tokenizer)
			if err != nil {
				t.Fatal(err)
			}
			tb := &fakeTB{name: "TestExecBackend"}
			rep := Bisect(tb, []Prompt{TokenPrompt("m50", p16.Tokens[:50]...)}, execOptions(m,
				backend+mode+" --plant stage=v,layer=5,pos>=16,scale=1.5", t.TempDir(), Baseline(), MaxNewTokens(2))...)
			pr := rep.Prompts[0]
			want := "m50: FIRST_FAIL pos=16 layer=5 tensor=v category=ATTN_KERNEL_INPUTS ("
			if !strings.HasPrefix(pr.Line, want) || pr.Origin == nil || pr.Origin.LayerRuns == 0 || pr.Origin.PositionRuns == 0 {
				t.Errorf("line %q, want prefix %q, layer and position runs; reported:\n%s", pr.Line, want, strings.Join(tb.errors, "\n"))
			}
		})
	}
}

// TestExecCrash runs engines that die part way: each verdict names the last planned record
// written and the first missing one, the engine's last words and its log.
func TestExecCrash(t *testing.T) {
	m, backend := execSetup(t)
	const fault = "launch failed: an illegal memory access was encountered"
	tests := []struct {
		name, flags string
		line        string // with $ART for the artifacts folder
		notes       int
	}{
		{"after N records", " --crash-after 30",
			"p0_short: CRASH after layer 0 v pos 4, before q_post_rope pos 0, RoPE on the queries (exit status 1: after 30 records: " + fault + "; 30 of 670 planned records written; log $ART/<date>/b3_61/run/p0_short.log)", 0},
		{"partial last line", " --crash-after 30 --partial-line",
			"p0_short: CRASH after layer 0 v pos 4, before q_post_rope pos 0, RoPE on the queries (exit status 1: after 30 records: " + fault + "; 30 of 670 planned records written; log $ART/<date>/b3_61/run/p0_short.log)", 1},
		{"at a stage", " --crash-at attn_ctx,2",
			"p0_short: CRASH after layer 2 k_post_rope pos 4, before attn_ctx pos 0, the attention softmax(QK^T)V (exit status 1: the attention softmax(QK^T)V (attn_ctx) layer 2 pos 0: " + fault + "; 170 of 670 planned records written; log $ART/<date>/b3_61/run/p0_short.log)", 0},
		{"in a decode step", " --crash-at attn_in,0,7",
			"p0_short: CRASH after layer 0 residual_pre_attn pos 7, before attn_in, the attention RMSNorm (exit status 1: the attention RMSNorm (attn_in) layer 0 pos 7: " + fault + "; 471 of 670 planned records written; log $ART/<date>/b3_61/run/p0_short.log)", 0},
		{"before anything", " --crash-after 0",
			"p0_short: CRASH before the first planned record, embed_out pos 0, the token embedding (exit status 1: after 0 records: " + fault + "; 0 of 670 planned records written; log $ART/<date>/b3_61/run/p0_short.log)", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			art := t.TempDir()
			tb := &fakeTB{name: "TestExecCrash"}
			rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+tc.flags, art)...)
			pr := rep.Prompts[0]
			if got := maskArtifacts(pr.Line, art); got != tc.line {
				t.Errorf("line\n%s\nwant\n%s", got, tc.line)
			}
			if len(tb.errors) != 1 || !strings.HasPrefix(tb.errors[0], pr.Line+"\n") || pr.Crash == nil || pr.Err != nil {
				t.Fatalf("errors %q, crash %v, err %v", tb.errors, pr.Crash, pr.Err)
			}
			if len(pr.Notes) != tc.notes {
				t.Errorf("notes %q, want %d", pr.Notes, tc.notes)
			}
			log, err := os.ReadFile(pr.Crash.Log)
			if err != nil || !strings.Contains(string(log), fault+"\n== exit status 1 after ") {
				t.Errorf("log %s: %v\n%s", pr.Crash.Log, err, log)
			}
			var sum strings.Builder
			if err := rep.WriteSummary(&sum); err != nil {
				t.Fatal(err)
			}
			k := pr.Crash.Next
			row := "| p0_short | " + strconv.Itoa(k.PosID) + " | " + strconv.Itoa(k.Layer) + " | " + k.TensorName + " (not reached) | - | - | CRASH |"
			for _, want := range []string{row, "| CRASH | 1 | 100% |"} {
				if !strings.Contains(sum.String(), want) {
					t.Errorf("summary lacks %q:\n%s", want, sum.String())
				}
			}
			md, err := os.ReadFile(filepath.Join(rep.Dir, "p0_short_report.md"))
			if err != nil || !strings.Contains(string(md), "| CRASH | 1 | 100.0% |") || !strings.Contains(string(md), "- "+pr.Line) {
				t.Errorf("report: %v\n%s", err, md)
			}
		})
	}
}

// TestExecCrashAfterDivergence checks that what an engine wrote before it crashed is
// compared first: a divergence there is the FIRST_FAIL, and the crash is named after it.
func TestExecCrashAfterDivergence(t *testing.T) {
	m, backend := execSetup(t)
	art := t.TempDir()
	tb := &fakeTB{name: "TestExecCrash"}
	rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+" --plant stage=v,layer=0,pos>=2,scale=1.5 --crash-at mlp_out,1", art)...)
	pr := rep.Prompts[0]
	want := "p0_short: FIRST_FAIL pos=2 layer=0 tensor=v category=ATTN_KERNEL_INPUTS ("
	if !strings.HasPrefix(pr.Line, want) || pr.Crash == nil || pr.Origin != nil {
		t.Fatalf("line %q (want prefix %q), crash %v, origin %v", pr.Line, want, pr.Crash, pr.Origin)
	}
	crash := "p0_short: CRASH after layer 1 ffn_norm_in pos 4, before mlp_out pos 0, the SwiGLU MLP (exit status 1: "
	if len(tb.errors) != 1 || !strings.Contains(tb.errors[0], "\n  "+crash) {
		t.Errorf("errors %q, want the crash line %q", tb.errors, crash)
	}
	var sum strings.Builder
	rep.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "| ATTN_KERNEL_INPUTS | 1 | 100% |") || strings.Contains(sum.String(), "| CRASH |") {
		t.Errorf("summary:\n%s", sum.String())
	}
}

// TestExecHang runs an engine that hangs with a child process: the timeout kills both and
// the verdict is a HANG located like a crash.
func TestExecHang(t *testing.T) {
	m, backend := execSetup(t)
	pids := filepath.Join(t.TempDir(), "pids")
	art := t.TempDir()
	// Long enough for the engine to load its model and reach the hang on a busy machine.
	const timeout = 5 * time.Second
	tb := &fakeTB{name: "TestExecHang"}
	start := time.Now()
	rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+" --crash-at attn_ctx,2 --hang --partial-line --pid-file "+pids, art, ExecTimeout(timeout))...)
	took := time.Since(start)
	pr := rep.Prompts[0]
	want := "p0_short: HANG after layer 2 k_post_rope pos 4, before attn_ctx pos 0, the attention softmax(QK^T)V (no exit within the 5s timeout, process group killed; last output: fakeengine: waiting on a device queue that never drains; 170 of 670 planned records written; log $ART/<date>/b3_61/run/p0_short.log)"
	if got := maskArtifacts(pr.Line, art); got != want {
		t.Errorf("line\n%s\nwant\n%s", got, want)
	}
	t.Logf("Bisect returned %v after the start of a run with a %v timeout", took, timeout)
	if took > timeout+10*time.Second {
		t.Errorf("took %v", took)
	}
	var sum strings.Builder
	rep.WriteSummary(&sum)
	if !strings.Contains(sum.String(), "| HANG | 1 | 100% |") {
		t.Errorf("summary:\n%s", sum.String())
	}
	b, err := os.ReadFile(pids)
	if err != nil {
		t.Fatal(err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		t.Fatalf("pids %q", b)
	}
	for _, f := range fields {
		pid, _ := strconv.Atoi(f)
		for i := 0; i < 50 && syscall.Kill(pid, 0) == nil && !zombie(pid); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil && !zombie(pid) {
			t.Errorf("process %d still runs", pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

// zombie reports whether pid has exited and waits to be reaped (Linux; false elsewhere).
func zombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	f := strings.Fields(string(b))
	return err == nil && len(f) > 2 && f[2] == "Z"
}

// TestExecRawRows runs an engine that writes the seed's fields and raw .npy rows, no
// sketch: the rows are sketched while they exist, so a rounding difference is within
// tolerance, and kept with the artifacts, which stay analyzable. Without rows either, the
// same difference fails by hash, and a note says why.
func TestExecRawRows(t *testing.T) {
	m, backend := execSetup(t)
	const rounding = " --plant stage=attn_out,scale=1.000001"

	t.Run("raw rows", func(t *testing.T) {
		art := t.TempDir()
		tb := &fakeTB{name: "TestExecRawRows"}
		rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+" --raw-only"+rounding, art)...)
		pr := rep.Prompts[0]
		// Raw rows make every operation's own error measurable: the per-operation policy.
		if len(tb.errors) != 0 || len(pr.Notes) != 0 || pr.Policy != golden.PerOp.Name || pr.Result.Own == nil {
			t.Fatalf("errors %q notes %q policy %q", tb.errors, pr.Notes, pr.Policy)
		}
		if pr.Result.WithinTolerance == 0 {
			t.Fatal("no record differs: the planted rounding changed nothing")
		}
		var sum strings.Builder
		rep.WriteSummary(&sum)
		if want := "| p0_short | - | - | (670 records match) | own errors within their floors | - | N |"; !strings.Contains(sum.String(), want) {
			t.Errorf("summary lacks %q:\n%s", want, sum.String())
		}
		// The artifacts' traces name rows that exist: they compare exactly, from the rows.
		cand, err := golden.ReadDir(filepath.Join(rep.Dir, "traces"))
		if err != nil {
			t.Fatal(err)
		}
		if r := cand[0].Records[0]; !strings.HasPrefix(r.RawFile, "p0_short_rows/") {
			t.Errorf("raw_file %q", r.RawFile)
		}
		base, err := golden.ReadDir(filepath.Join(rep.Dir, "baseline"))
		if err != nil {
			t.Fatal(err)
		}
		cmp, err := golden.Compare(cand, base, golden.Tolerance)
		if err != nil || !cmp.OK() || cmp.Prompts[0].Compared != 670 {
			t.Errorf("artifacts analyzed: %v %+v", err, cmp)
		}
	})

	t.Run("neither rows nor sketches", func(t *testing.T) {
		art := t.TempDir()
		tb := &fakeTB{name: "TestExecRawRows"}
		rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+" --seed-only"+rounding, art, NoSelfBisect())...)
		pr := rep.Prompts[0]
		note := "p0_short: 670 of 670 records from exec carry neither a sketch nor raw rows: a difference in them cannot be sized (MAE n/a)"
		if len(pr.Notes) != 1 || !strings.HasPrefix(pr.Notes[0], note) {
			t.Errorf("notes %q, want %q...", pr.Notes, note)
		}
		if !strings.HasSuffix(pr.Line, "MAE n/a)") || len(tb.errors) != 1 {
			t.Errorf("line %q, errors %q", pr.Line, tb.errors)
		}
		if len(tb.logs) == 0 || !strings.HasPrefix(tb.logs[0], "note: "+note) {
			t.Errorf("logs %q", tb.logs)
		}
		md, err := os.ReadFile(filepath.Join(rep.Dir, "p0_short_report.md"))
		if err != nil || !strings.Contains(string(md), "## Notes\n\n- "+note) {
			t.Errorf("report: %v\n%s", err, md)
		}
	})
}

// TestExecPrefillOnly runs an engine that generates nothing: the message says the generated
// tokens are missing, and MaxNewTokens(0) compares it with the same goldens.
func TestExecPrefillOnly(t *testing.T) {
	m, backend := execSetup(t)
	tb := &fakeTB{name: "TestExecPrefillOnly"}
	rep := Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+" --prefill-only", t.TempDir())...)
	want := "p0_short: MISSING 335 baseline records absent from the candidate (first pos=5 layer=-1 tensor=embed_out): " +
		"the generated tokens at positions 5..9 are missing (the plan generates 5 after the 5-token prompt); an engine that only prefills runs with --max-tokens 0 (gretatest.MaxNewTokens(0))"
	if pr := rep.Prompts[0]; pr.Err == nil || pr.Err.Error() != want {
		t.Errorf("error %v\nwant %s", pr.Err, want)
	}
	tb = &fakeTB{name: "TestExecPrefillOnly"}
	rep = Bisect(tb, StandardPrompts()[:1], execOptions(m, backend+" --prefill-only", t.TempDir(), MaxNewTokens(0))...)
	if pr := rep.Prompts[0]; len(tb.errors) != 0 || pr.Compared != 335 {
		t.Errorf("errors %q, compared %d, want 335", tb.errors, pr.Compared)
	}
}

// TestSeedCrash is the seed's B3.61 run: an engine built for 32 layers, on a 22-layer model,
// dies at its first attention RMSNorm on every prompt. The verdict names that stage.
func TestSeedCrash(t *testing.T) {
	bin := buildFakeEngine(t)
	p := synth.Preset{Name: "seed22", Arch: "llama", NLayer: 22, Dim: 64, FFNDim: 128, NHead: 4, NHeadKV: 1, CtxLen: 256,
		Vocab: synth.TinyVocab, VocabKind: synth.VocabSPM, RopeBase: 10000, Eps: 1e-5}
	path := filepath.Join(t.TempDir(), "seed22.gguf")
	if err := synth.WriteFile(path, p, synth.F32, 1, nil); err != nil {
		t.Fatal(err)
	}
	m, err := model.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	art := t.TempDir()
	tb := &fakeTB{name: "TestSeedCrash"}
	toks := []int32{1, 300, 301, 302, 303, 304, 305, 306}
	rep := Bisect(tb, []Prompt{TokenPrompt("seed", toks...)}, LoadedModel(path, m), Baseline(), Artifacts(art),
		Backend("exec:"+bin+" --model {model} --prompt-file {tokens} --assume-layers 32"), Env(func(string) string { return "" }))
	want := "seed: CRASH after layer 0 residual_pre_attn pos 7, before attn_in pos 0, the attention RMSNorm (exit status 1: RMSNorm (Attn) launch failed: an illegal memory access was encountered; 16 of 871 planned records written; log $ART/<date>/b3_61/run/seed.log)"
	if got := maskArtifacts(rep.Prompts[0].Line, art); got != want {
		t.Errorf("line\n%s\nwant\n%s\nerrors: %q", got, want, tb.errors)
	}
}

// crashingEngine fails like a HIP kernel fault when it reaches a stage of a layer: the
// in-process path to a CRASH verdict.
type crashingEngine struct {
	*toyEngine
	stage golden.Stage
	layer int
	err   error
}

// kernelFault is the text of internal/hip's error for a faulting kernel.
var kernelFault = errorString("attention_prefill layer 2: launch failed: an illegal memory access was encountered; q [50 4] kv [50 4] heads 1/1")

type errorString string

func (e errorString) Error() string { return string(e) }

func (c *crashingEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) (logits []float32, err error) {
	t := *tap
	sink := t.Sink
	t.Sink = func(st golden.Stage, layer, pos int, row []float32) {
		if st == c.stage && layer == c.layer {
			panic(c)
		}
		sink(st, layer, pos, row)
	}
	defer func() {
		if r := recover(); r == c {
			logits, err = nil, c.err
		} else if r != nil {
			panic(r)
		}
	}()
	return c.toyEngine.Forward(tokens, pos0, &t)
}

func init() {
	engine.Register("toycrash", func(m *engine.Model) (engine.Engine, error) {
		e := &toyEngine{cfg: m.Config, device: "toy"}
		e.Reset()
		return &crashingEngine{toyEngine: e, stage: golden.AttnCtx, layer: 2, err: kernelFault}, nil
	})
}

// TestInProcessCrash checks that an in-process engine's failure gets the CRASH verdict, its
// error (a HIP kernel's, naming the kernel and layer) in the line.
func TestInProcessCrash(t *testing.T) {
	root := t.TempDir()
	recordToyGolden(t, root)
	tb := &fakeTB{name: "TestInProcessCrash"}
	rep := Bisect(tb, []Prompt{toyPrompt()}, toyGoldenOptions(t, root, Backend("toycrash"))...)
	want := "toy50: CRASH after layer 2 k_post_rope pos 49, before attn_ctx pos 0, the attention softmax(QK^T)V (engine: prompt \"toy50\" on toy: prefill of 50 tokens: " + string(kernelFault) + "; "
	if pr := rep.Prompts[0]; !strings.HasPrefix(pr.Line, want) || pr.Crash == nil {
		t.Errorf("line\n%s\nwant prefix\n%s", pr.Line, want)
	}
	if !regexp.MustCompile(`; \d+ of \d+ planned records written\)$`).MatchString(rep.Prompts[0].Line) {
		t.Errorf("line %q does not end with the records written", rep.Prompts[0].Line)
	}
}
