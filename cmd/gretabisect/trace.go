package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/execengine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	_ "github.com/gretabisect/gretabisect/internal/ref" // the cpu backend
	"github.com/gretabisect/gretabisect/internal/trace"
)

func init() {
	register("trace", "run prompts through a backend and write their traces (JSONL)", runTrace)
}

const traceUsage = `usage: gretabisect trace --out DIR (--prompt ID[,ID...]|all | --text STR | --tokens 1,2,3) [flags]

Runs each prompt through the model on the backend, greedily generates --max-tokens tokens,
and writes DIR/<prompt_id>_trace.jsonl with the rows the plan selects. The plan starts from
the seed's environment (GRETA_TRACE_STAGE_LAYERS, GRETA_TRACE_B3_61_<STAGE>,
GRETA_TRACE_B3_61_POS_<N>); flags override it. --route-check also runs the other route
(prefill vs one token at a time), writes its traces to DIR/<route>/, and compares the two
exactly: exit 1 when they diverge.

--backend exec:COMMAND runs an external engine once per prompt and route (the command and
its environment as for bisect; GRETA_TRACE_ROUTE names the route); its output goes to
DIR/run/<prompt_id>.log and the raw rows it writes are kept in DIR/<prompt_id>_rows/. An
engine that crashes or hangs (--timeout) leaves its partial trace and a CRASH or HANG line
naming where it stopped: exit 1.

flags:
`

type traceFlags struct {
	model, backend, out               string
	prompt, text, tokens, promptID    string
	layers, positions, stages, inject string
	route, timeout                    string
	maxTokens                         int
	raw, routeCheck, quiet            bool
}

func runTrace(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("trace", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, traceUsage)
		fs.PrintDefaults()
	}
	var f traceFlags
	modelSpec := modelFlag(fs)
	fs.StringVar(&f.backend, "backend", envOr("GRETA_BACKEND", "cpu"), "backend `name` ($GRETA_BACKEND; registered: "+strings.Join(engine.Names(), ", ")+"; or exec:COMMAND)")
	timeoutFlag(fs, &f.timeout)
	fs.StringVar(&f.out, "out", "", "output `dir` (required)")
	fs.StringVar(&f.prompt, "prompt", "", "standard prompt `ids`, comma-separated, or all: "+strings.Join(prompts.IDs(), ", "))
	fs.StringVar(&f.text, "text", "", "custom prompt `text` (BOS added by the model's rule)")
	fs.StringVar(&f.tokens, "tokens", "", "custom prompt token `ids`, comma-separated, used as given (no BOS added)")
	fs.StringVar(&f.promptID, "prompt-id", "custom", "prompt_id of a --text or --tokens prompt")
	fs.StringVar(&f.layers, "layers", "", "traced `layers`: comma-separated or all (default 0,1,2,4,8)")
	fs.StringVar(&f.positions, "positions", "", "traced prompt `positions`: integers, last, windows, or all (default 826,1652,last,windows)")
	fs.StringVar(&f.stages, "stages", "", "traced `stages`: tensor names or all (default all)")
	fs.IntVar(&f.maxTokens, "max-tokens", trace.DefaultMaxNewTokens, "tokens greedily generated after the prompt")
	fs.StringVar(&f.route, "route", golden.RoutePrefill, "how the prompt is computed: prefill (one batched pass) or decode (one token at a time)")
	fs.BoolVar(&f.routeCheck, "route-check", false, "also run the other route and compare the two; exit 1 on divergence")
	fs.BoolVar(&f.raw, "raw", false, "also write every traced row as a .npy file beside the trace")
	fs.StringVar(&f.inject, "inject", os.Getenv("GRETA_INJECT"), "fault `spec` injected into the forward pass ($GRETA_INJECT)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress or timing on stderr")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	f.model = *modelSpec
	if fs.NArg() > 0 {
		return fail(stderr, "trace", fmt.Errorf("unexpected argument %q (flags only)", fs.Arg(0)))
	}
	if err := traceMain(f, stdout, stderr); err != nil {
		if errors.Is(err, errDiverged) {
			return exitDiverged
		}
		return fail(stderr, "trace", err)
	}
	return exitOK
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// plan builds the trace plan: defaults, then the environment, then the flags.
func (f traceFlags) plan() (trace.Plan, error) {
	p, err := trace.EnvPlan()
	if err != nil {
		return p, err
	}
	if f.layers != "" {
		if err := p.SetLayers(f.layers); err != nil {
			return p, fmt.Errorf("--layers: %w", err)
		}
	}
	if f.positions != "" {
		if err := p.SetPositions(f.positions); err != nil {
			return p, fmt.Errorf("--positions: %w", err)
		}
	}
	if f.stages != "" {
		if err := p.SetStages(f.stages); err != nil {
			return p, fmt.Errorf("--stages: %w", err)
		}
	}
	if f.maxTokens < 0 {
		return p, fmt.Errorf("--max-tokens %d: must be 0 or more", f.maxTokens)
	}
	p.MaxNewTokens = f.maxTokens
	return p, nil
}

func traceMain(f traceFlags, stdout, stderr io.Writer) error {
	if f.out == "" {
		return errors.New("--out DIR is required")
	}
	given := 0
	for _, s := range []string{f.prompt, f.text, f.tokens} {
		if s != "" {
			given++
		}
	}
	if given != 1 {
		return errors.New("give exactly one of --prompt, --text and --tokens")
	}
	if f.route != golden.RoutePrefill && f.route != golden.RouteDecode {
		return fmt.Errorf("--route %q: want prefill or decode", f.route)
	}
	plan, err := f.plan()
	if err != nil {
		return err
	}
	faults, err := engine.ParseFaults(f.inject)
	if err != nil {
		return fmt.Errorf("--inject: %w", err)
	}
	m, err := model.Open(f.model)
	if err != nil {
		return err
	}
	defer m.Close()
	ps, err := f.prompts(m)
	if err != nil {
		return err
	}
	b, err := f.openBackend(m)
	if err != nil {
		return err
	}
	defer b.close()

	routes := []string{f.route}
	if f.routeCheck {
		routes = append(routes, otherRoute(f.route))
	}
	// byRoute[i] collects the records of routes[i] over every prompt.
	byRoute := make([][]golden.Record, len(routes))
	for _, p := range ps {
		for i, route := range routes {
			dir := f.out
			if i > 0 {
				dir = filepath.Join(f.out, route)
			}
			recs, err := f.runOne(b, m, p, route, plan, faults, dir, stderr)
			var crash *golden.Crash
			if errors.As(err, &crash) {
				// What was written is kept; a route check has nothing left to compare.
				fmt.Fprintln(stdout, crash.Line(p.ID))
				return errDiverged
			}
			if err != nil {
				return err
			}
			byRoute[i] = append(byRoute[i], recs...)
		}
	}
	if !f.routeCheck {
		return nil
	}
	// The requested route is the baseline, the other the candidate; the output is the
	// analyzer's: the lines of prompts that do not match, notes, then the summary.
	rep, err := golden.CompareRecords(byRoute[1], byRoute[0], golden.Exact)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "route-check: candidate route %s, baseline route %s\n", routes[1], routes[0])
	return reportLines(rep, stdout)
}

func otherRoute(r string) string {
	if r == golden.RoutePrefill {
		return golden.RouteDecode
	}
	return golden.RoutePrefill
}

// prompts returns the prompts the flags name.
func (f traceFlags) prompts(m *model.Model) ([]prompts.Prompt, error) {
	switch {
	case f.tokens != "":
		p, err := prompts.ParseTokens(f.promptID, f.tokens)
		return []prompts.Prompt{p}, err
	case f.text != "":
		if m.Tokenizer == nil {
			return nil, fmt.Errorf("--text: model %s has no tokenizer; use --tokens", m.Name)
		}
		p, err := prompts.FromText(f.promptID, f.text, m.Tokenizer)
		return []prompts.Prompt{p}, err
	}
	if m.Tokenizer == nil {
		return nil, fmt.Errorf("--prompt: model %s has no tokenizer; use --tokens", m.Name)
	}
	ids := strings.Split(f.prompt, ",")
	if f.prompt == "all" {
		ids = prompts.IDs()
	}
	var out []prompts.Prompt
	for _, id := range ids {
		p, err := prompts.Standard(strings.TrimSpace(id), m.Tokenizer)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// backend is an in-process engine or an external one.
type backend struct {
	e   engine.Engine
	ext *execengine.Command
}

func (f traceFlags) openBackend(m *model.Model) (*backend, error) {
	command, ok := strings.CutPrefix(f.backend, execengine.Prefix)
	if !ok {
		e, err := engine.Open(f.backend, &m.Model)
		return &backend{e: e}, err
	}
	if f.raw {
		return nil, errors.New("--raw: an external engine writes raw rows itself when it does (they are kept beside the trace)")
	}
	timeout, err := execengine.ParseTimeout(f.timeout)
	if err != nil {
		return nil, fmt.Errorf("--timeout: %w", err)
	}
	ext, err := execengine.New(command, f.model, timeout)
	return &backend{ext: ext}, err
}

func (b *backend) close() {
	if b.e != nil {
		b.e.Close()
	}
}

// runOne traces one prompt on one route and writes dir/<prompt_id>_trace.jsonl. A run that
// ended early writes what it recorded and returns a *golden.Crash located in the plan.
func (f traceFlags) runOne(b *backend, m *model.Model, p prompts.Prompt, route string, plan trace.Plan,
	faults []engine.Fault, dir string, stderr io.Writer) ([]golden.Record, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	label := fmt.Sprintf("%s (%s)", p.ID, route)
	sel := plan.Resolve(m.Config.NLayer, len(p.Tokens))
	start := time.Now()
	var recs []golden.Record
	generated := plan.MaxNewTokens
	var err error
	if b.ext != nil {
		recs, err = f.runExternal(b.ext, p, route, sel, plan, faults, dir, stderr)
	} else {
		req := driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan, Faults: faults, Route: route}
		if f.raw {
			req.RawDir = dir
		}
		prog := newProgress(stderr, label, f.quiet)
		req.Progress = prog.update
		var res *driver.Result
		res, err = driver.Run(b.e, m, req)
		prog.done()
		if res != nil {
			recs, generated = res.Records, len(res.Generated)
		}
	}
	var crash *golden.Crash
	if errors.As(err, &crash) {
		crash.Locate(sel.Keys(p.ID, golden.RouteOrder(route, len(p.Tokens))), recs)
	} else if err != nil {
		return nil, err
	}
	path := golden.TracePath(dir, p.ID)
	if len(recs) > 0 || crash == nil {
		if err := golden.WriteTrace(path, recs); err != nil {
			return nil, err
		}
	}
	if crash != nil {
		return recs, crash
	}
	if !f.quiet {
		secs := time.Since(start).Seconds()
		n := len(p.Tokens) + generated
		fmt.Fprintf(stderr, "%s: %d tokens (%d prompt + %d generated) in %.2fs, %.1f tokens/s; %d records -> %s\n",
			label, n, len(p.Tokens), generated, secs, float64(n)/secs, len(recs), path)
	}
	return recs, nil
}

// runExternal runs an external engine on one route. Its records must say they were computed
// on that route: an engine that ignores GRETA_TRACE_ROUTE would make a route check compare a
// route with itself.
func (f traceFlags) runExternal(ext *execengine.Command, p prompts.Prompt, route string, sel *engine.Selection,
	plan trace.Plan, faults []engine.Fault, dir string, stderr io.Writer) ([]golden.Record, error) {
	out, err := ext.Trace(execengine.Run{
		PromptID: p.ID, Text: f.text, Tokens: p.Tokens, Sel: sel, MaxNewTokens: plan.MaxNewTokens,
		Route: route, Faults: faults, Log: filepath.Join(dir, "run", p.ID+".log"), RowsDir: dir,
	})
	if out == nil {
		return nil, err
	}
	for _, n := range out.Notes {
		fmt.Fprintf(stderr, "note: %s\n", n)
	}
	for _, r := range out.Records {
		if r.Phase != golden.PhaseDecode && r.Route != "" && r.Route != route {
			return nil, fmt.Errorf("%s: the engine ignored %s=%s: record %s says route %s", p.ID, execengine.EnvTraceRoute, route, golden.KeyOf(r), r.Route)
		}
	}
	return out.Records, err
}

// progress draws "label: done/total tokens" on stderr once a run has lasted a second:
// redrawn in place (\r) at most ten times a second on a terminal, else a plain line at each
// tenth of the work.
type progress struct {
	w     io.Writer
	label string
	tty   bool
	off   bool
	start time.Time
	last  time.Time
	tenth int
	drawn bool
}

// progressAfter is how long a run goes before progress is shown: short runs stay quiet.
const progressAfter = time.Second

func newProgress(w io.Writer, label string, quiet bool) *progress {
	p := &progress{w: w, label: label, off: quiet, start: time.Now()}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) update(done, total int) {
	if p.off || total == 0 || time.Since(p.start) < progressAfter {
		return
	}
	if p.tty {
		if now := time.Now(); now.Sub(p.last) >= 100*time.Millisecond || done == total {
			p.last = now
			p.drawn = true
			fmt.Fprintf(p.w, "\r%s: %d/%d tokens", p.label, done, total)
		}
		return
	}
	if t := done * 10 / total; t > p.tenth && done < total {
		p.tenth = t
		fmt.Fprintf(p.w, "%s: %d/%d tokens\n", p.label, done, total)
	}
}

func (p *progress) done() {
	if p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
}
