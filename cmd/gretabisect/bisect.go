package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/execengine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/trace"
)

func init() {
	register("bisect", "run the B3.61 suite against the golden traces and isolate the first divergence", runBisect)
}

const bisectUsage = `usage: gretabisect bisect [--model tiny|PATH] [--backend cpu|hip|exec:CMD] [--inject SPEC]
                         [--golden DIR] [--out DIR] [--prompts IDS] [--max-tokens N] [--timeout D]
                         [--live] [--update] [--quiet]

Runs the standard prompts (p0_short, p6_len_16, p6_len_32) through the backend with the
default plan (layers 0,1,2,4,8; positions 826, 1652, last and three windows of 16; every
stage; --max-tokens generated tokens, 5 by default), compares each trace with its golden
trace
(<golden>/<device>/<model>/<prompt_id>_trace.jsonl; a device without goldens of its own is
compared with the cpu goldens: by layer replay against its noise floors when the backend
replays layers, cpu-f64acc and hip do, else under the tolerance policy), re-runs to isolate
where a divergence started, and prints the First Failure Table and the Root Cause Summary. Reports
(Markdown, JSON, HTML heatmap) and both traces go to <out>/<date>/b3_61/. Progress on stderr.

An exec: engine that exits with an error, or outlives --timeout and is killed with its
process group, gets a CRASH or HANG line naming the last planned record it wrote and the
first it did not; its output is in <out>/<date>/b3_61/run/<prompt_id>.log.

--inject perturbs the backend's forward pass (GRETA_INJECT syntax, e.g.
"stage=k_post_rope,layer=3,pos>=826,scale=1.001") to rehearse the localisation end to end.

exit status: 0 nothing diverged, 1 a divergence was found, 2 bad input or usage

flags:
`

func runBisect(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("bisect", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, bisectUsage)
		fs.PrintDefaults()
	}
	modelSpec := modelFlag(fs)
	backend := fs.String("backend", envOr(gretatest.EnvBackend, "cpu"), "backend under test: cpu, hip, or exec:COMMAND ($GRETA_BACKEND)")
	inject := fs.String("inject", os.Getenv(gretatest.EnvInject), "faults to inject, e.g. stage=k_post_rope,layer=3,pos>=826,scale=1.001 ($GRETA_INJECT)")
	goldenDir := fs.String("golden", "", "golden traces `dir` (default golden/testdata of the enclosing module)")
	out := fs.String("out", envOr(gretatest.EnvArtifacts, "artifacts"), "artifacts `dir` ($GRETA_ARTIFACTS)")
	ids := fs.String("prompts", "all", "standard prompt `ids`, comma-separated, or all")
	live := fs.Bool("live", false, "compare with a live run of the cpu reference (with --inject: of the backend without faults) instead of the golden traces")
	update := fs.Bool("update", false, "record the golden traces instead of comparing (refused with --inject)")
	maxTokens := fs.Int("max-tokens", trace.DefaultMaxNewTokens, "tokens generated after each prompt (0 for an engine that only prefills)")
	var timeout string
	timeoutFlag(fs, &timeout)
	quiet := fs.Bool("quiet", false, "no progress on stderr (notes are still printed)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "bisect", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	wait, err := execengine.ParseTimeout(timeout)
	if err != nil {
		return fail(stderr, "bisect", fmt.Errorf("--timeout: %w", err))
	}
	faults, err := engine.ParseFaults(*inject)
	if err != nil {
		return fail(stderr, "bisect", fmt.Errorf("--inject: %w", err))
	}
	prompts, err := selectPrompts(*ids)
	if err != nil {
		return fail(stderr, "bisect", err)
	}
	m, err := model.Open(*modelSpec)
	if err != nil {
		return fail(stderr, "bisect", fmt.Errorf("--model: %w", err))
	}

	opts := []gretatest.Option{
		gretatest.LoadedModel(*modelSpec, m), gretatest.Backend(*backend), gretatest.Inject(faults...),
		gretatest.Artifacts(*out), gretatest.Env(func(string) string { return "" }),
		gretatest.Update(*update), gretatest.RecordWith(recordCommand(fs)),
		gretatest.MaxNewTokens(*maxTokens), gretatest.ExecTimeout(wait),
	}
	if *goldenDir != "" {
		opts = append(opts, gretatest.GoldenDir(*goldenDir))
	}
	if *live {
		opts = append(opts, gretatest.Baseline())
	}
	if !*quiet {
		opts = append(opts, gretatest.Progress(newRunProgress(stderr).report))
	}
	var setupErr string
	tb := &cliTB{name: "TestB361", stdout: stdout, stderr: stderr, quiet: *quiet, setupErr: &setupErr}
	start := time.Now()
	rep := gretatest.Bisect(tb, prompts, opts...)
	if len(rep.Prompts) == 0 || setupErr != "" {
		return fail(stderr, "bisect", errors.New(strings.TrimPrefix(setupErr, "gretatest: ")))
	}
	code := exitOK
	for _, p := range rep.Prompts {
		switch {
		case p.Err != nil:
			fmt.Fprintf(stderr, "gretabisect bisect: %s\n", oneLineOf(p.Err.Error()))
			code = exitUsage
		case p.Line != "" && code == exitOK:
			code = exitDiverged
		}
	}
	fmt.Fprintln(stdout)
	if err := rep.WriteSummary(stdout); err != nil {
		return fail(stderr, "bisect", err)
	}
	fmt.Fprintf(stdout, "\nreports and traces: %s\n", rep.Dir)
	if !*quiet {
		fmt.Fprintf(stderr, "bisect: %d of %d prompts diverged, %v\n", countDiverged(rep), len(rep.Prompts), time.Since(start).Round(time.Millisecond))
	}
	return code
}

// recordCommand is this command with --update, for the message on a missing golden: the
// flags given that choose the model, backend, golden folder and prompts are kept (defaults
// from GRETA_* come from the same environment again).
func recordCommand(fs *flag.FlagSet) string {
	cmd := "gretabisect bisect --update"
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "model", "backend", "golden", "prompts", "max-tokens", "timeout":
			cmd += " --" + f.Name + " " + shellWord(f.Value.String())
		}
	})
	return cmd
}

// countDiverged counts the prompts with a FIRST_FAIL.
func countDiverged(rep *gretatest.Report) int {
	n := 0
	for _, p := range rep.Prompts {
		if p.Line != "" {
			n++
		}
	}
	return n
}

// selectPrompts picks standard prompts by id ("all" for every one).
func selectPrompts(ids string) ([]gretatest.Prompt, error) {
	all := gretatest.StandardPrompts()
	if ids == "all" {
		return all, nil
	}
	var out []gretatest.Prompt
	for _, id := range strings.Split(ids, ",") {
		id = strings.TrimSpace(id)
		found := false
		for _, p := range all {
			if p.ID == id {
				out, found = append(out, p), true
			}
		}
		if !found {
			known := make([]string, len(all))
			for i, p := range all {
				known[i] = p.ID
			}
			return nil, fmt.Errorf("--prompts: unknown prompt %q (known: %s)", id, strings.Join(known, ", "))
		}
	}
	return out, nil
}

// verdict matches the first line of a failure the command prints: a FIRST_FAIL, or a run
// that crashed or hung.
var verdict = regexp.MustCompile(`^\S+: (CRASH|HANG) |FIRST_FAIL`)

// cliTB prints what Bisect reports: failures on stdout, notes on stderr. It is named after
// the B3.61 suite test, so a missing golden's message gives the command that records it.
type cliTB struct {
	name           string
	stdout, stderr io.Writer
	quiet          bool
	setupErr       *string // an error before any prompt ran (bad option, model, backend)
	inPrompt       bool
}

func (t *cliTB) Helper()      {}
func (t *cliTB) Name() string { return t.name }

func (t *cliTB) Errorf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !t.inPrompt {
		if *t.setupErr == "" {
			*t.setupErr = oneLineOf(msg)
		}
		return
	}
	if verdict.MatchString(oneLineOf(msg)) {
		fmt.Fprintln(t.stdout, msg)
	}
}

// Logf prints progress and notes; notes (what the reader must know of the traces) even
// when quiet.
func (t *cliTB) Logf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if !t.quiet || strings.HasPrefix(msg, "note: ") {
		fmt.Fprintln(t.stderr, msg)
	}
}

// Run runs one prompt as a subtest, named like the B3.61 suite's.
func (t *cliTB) Run(name string, f func(gretatest.TB)) bool {
	sub := *t
	sub.name, sub.inPrompt = t.name+"/"+name, true
	f(&sub)
	return true
}

func oneLineOf(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}

// runProgress shows the progress of each traced run (trace's progress display), one run
// per prompt at a time: self-bisection's re-runs start afresh.
type runProgress struct {
	mu   sync.Mutex
	w    io.Writer
	runs map[string]*progress
}

func newRunProgress(w io.Writer) *runProgress {
	return &runProgress{w: w, runs: map[string]*progress{}}
}

func (r *runProgress) report(promptID string, done, total int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.runs[promptID]
	if p == nil {
		p = newProgress(r.w, promptID, false)
		r.runs[promptID] = p
	}
	p.update(done, total)
	if done >= total {
		p.done()
		delete(r.runs, promptID)
	}
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && !strings.ContainsFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '-' || r == '_' || r == ',' || r == ':' ||
			'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' || '0' <= r && r <= '9')
	}) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
