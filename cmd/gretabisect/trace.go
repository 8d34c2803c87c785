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
	"github.com/gretabisect/gretabisect/internal/engine"
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

flags:
`

type traceFlags struct {
	model, backend, out               string
	prompt, text, tokens, promptID    string
	layers, positions, stages, inject string
	route                             string
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
	fs.StringVar(&f.backend, "backend", envOr("GRETA_BACKEND", "cpu"), "backend `name` ($GRETA_BACKEND; registered: "+strings.Join(engine.Names(), ", ")+")")
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
	faults, err := trace.ParseFaults(f.inject)
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
	e, err := engine.Open(f.backend, m)
	if err != nil {
		return err
	}
	defer e.Close()

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
			recs, err := f.runOne(e, m, p, route, plan, faults, dir, stderr)
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

// runOne traces one prompt on one route and writes dir/<prompt_id>_trace.jsonl.
func (f traceFlags) runOne(e engine.Engine, m *model.Model, p prompts.Prompt, route string, plan trace.Plan,
	faults []trace.Fault, dir string, stderr io.Writer) ([]golden.Record, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	req := engine.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan, Faults: faults, Route: route}
	if f.raw {
		req.RawDir = dir
	}
	label := fmt.Sprintf("%s (%s)", p.ID, route)
	prog := newProgress(stderr, label, f.quiet)
	req.Progress = prog.update
	start := time.Now()
	res, err := engine.Run(e, m, req)
	prog.done()
	if err != nil {
		return nil, err
	}
	path := golden.TracePath(dir, p.ID)
	if err := golden.WriteTrace(path, res.Records); err != nil {
		return nil, err
	}
	if !f.quiet {
		secs := time.Since(start).Seconds()
		n := len(p.Tokens) + len(res.Generated)
		fmt.Fprintf(stderr, "%s: %d tokens (%d prompt + %d generated) in %.2fs, %.1f tokens/s; %d records -> %s\n",
			label, n, len(p.Tokens), len(res.Generated), secs, float64(n)/secs, len(res.Records), path)
	}
	return res.Records, nil
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
