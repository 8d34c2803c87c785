// Package execengine runs an external inference engine as a traced backend: a command run
// once per traced run with the seed's environment (and the same plan in one JSON file), its
// output appended to a log, its whole process group killed when it outlives a timeout, and
// the <prompt_id>_trace.jsonl it writes read back, also when it crashed part way. Raw .npy
// rows it writes instead of sketches are sketched while they exist, and kept on request.
package execengine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Prefix starts a backend name that runs an external engine: "exec:COMMAND".
const Prefix = "exec:"

// Environment an engine receives besides the seed's trace variables
// (GRETA_TRACE_STAGE_LAYERS, GRETA_TRACE_B3_61_<STAGE>, GRETA_TRACE_B3_61_POS_<N>).
const (
	EnvB361         = "GRETA_B3_61"          // "1": the B3.61 trace is on
	EnvTraceStage   = "GRETA_TRACE_STAGE"    // "1": stage tracing is on
	EnvTraceOutDir  = "GRETA_TRACE_OUT_DIR"  // folder receiving <prompt_id>_trace.jsonl
	EnvPromptID     = "GRETA_PROMPT_ID"      // the prompt's id
	EnvMaxNewTokens = "GRETA_MAX_NEW_TOKENS" // tokens to generate after the prompt
	EnvTraceRoute   = "GRETA_TRACE_ROUTE"    // "prefill" (one batched pass) or "decode" (a token at a time)
	EnvTracePlan    = "GRETA_TRACE_PLAN"     // a JSON file holding the whole plan (PlanFile)
	EnvInject       = "GRETA_INJECT"         // faults, in engine.ParseFaults syntax
)

// EnvTimeout sets how long one run may take before it is killed as hung: a Go duration
// ("90s", "30m") or a number of seconds; 0 waits forever.
const EnvTimeout = "GRETA_EXEC_TIMEOUT"

// DefaultTimeout is generous: a 1.1B model's long prompt on a CPU takes minutes, not half an
// hour.
const DefaultTimeout = 30 * time.Minute

// ParseTimeout reads a timeout as EnvTimeout writes it.
func ParseTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, err := strconv.Atoi(s); err == nil && n >= 0 {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("timeout %q: want a duration such as 90s or 30m, or seconds", s)
	}
	return d, nil
}

// Command is an external engine's command line:
//
//	./greta_infer --model {model} --prompt-file {prompt}
//
// It is split at spaces (no quoting) and these placeholders are replaced in each argument:
// {model} the model spec (a GGUF path, or an embedded model's name such as "tiny"),
// {prompt} a file holding the prompt's text (its token ids, comma-separated, when the prompt
// has no text), {tokens} a file holding the token ids (BOS included), {prompt_id}, and {out}
// the output folder.
type Command struct {
	args    []string
	model   string
	timeout time.Duration
}

// New parses a command line (without Prefix) for a model spec; timeout 0 waits forever.
func New(command, modelSpec string, timeout time.Duration) (*Command, error) {
	args := strings.Fields(command)
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: no command", Prefix)
	}
	return &Command{args: args, model: modelSpec, timeout: timeout}, nil
}

// String is the command line as given, placeholders unreplaced.
func (c *Command) String() string { return strings.Join(c.args, " ") }

// Run is one traced run of a prompt.
type Run struct {
	PromptID     string
	Text         string  // the prompt's text; "" gives {prompt} the token ids
	Tokens       []int32 // BOS included
	Sel          *engine.Selection
	MaxNewTokens int
	Route        string // golden.RoutePrefill ("" too) or golden.RouteDecode
	Faults       []engine.Fault
	// Log is the file the engine's stdout and stderr are appended to, after a header line
	// naming the run; "" keeps no log (the last line is still quoted on a crash).
	Log string
	// RowsDir keeps the raw .npy rows the engine writes, under <prompt_id>_rows/, and the
	// records' raw_file name them relative to it: a trace written into RowsDir stays
	// analyzable. "" keeps none: the rows are sketched and their raw_file cleared.
	RowsDir string
}

// Output is what a run left: the planned records the engine wrote, in its order, and notes
// the reader must see (rows that could not be read, a last line cut short).
type Output struct {
	Records []golden.Record
	Notes   []string
}

// Trace runs the engine once. It gives the engine the process environment without GRETA_*
// variables, plus GRETA_B3_61=1, GRETA_TRACE_STAGE=1, GRETA_TRACE_STAGE_LAYERS,
// GRETA_TRACE_B3_61_<STAGE>=1 per planned stage, GRETA_TRACE_B3_61_POS_<N>=1 per planned
// position (prompt and generated), GRETA_TRACE_OUT_DIR, GRETA_PROMPT_ID,
// GRETA_MAX_NEW_TOKENS, GRETA_TRACE_ROUTE, GRETA_TRACE_PLAN (the same plan as one JSON file,
// PlanFile) and, with faults, GRETA_INJECT. The engine writes
// <out>/<prompt_id>_trace.jsonl in the seed's format; records outside the plan are dropped.
//
// When the engine exits with an error or a signal, or outlives the timeout (its process
// group is then killed), Trace returns what it wrote with a *golden.Crash: a cut-short last
// line is dropped, a missing trace is no records. Other errors (the command cannot start, a
// clean exit without a usable trace) come without an Output.
func (c *Command) Trace(r Run) (*Output, error) {
	dir, err := os.MkdirTemp("", "gretabisect-exec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, err
	}
	env, args, err := c.prepare(r, dir, out)
	if err != nil {
		return nil, err
	}
	logPath := r.Log
	if logPath == "" {
		logPath = filepath.Join(dir, "run.log")
	}
	lg, err := openLog(logPath, fmt.Sprintf("prompt %s, route %s: %s", r.PromptID, routeOf(r), strings.Join(args, " ")))
	if err != nil {
		return nil, err
	}
	defer lg.close()

	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = lg.f, lg.f
	ownGroup(cmd)
	start := time.Now()
	runErr := cmd.Run()
	killGroup(cmd) // what the engine left running dies with the run
	elapsed := time.Since(start).Round(time.Millisecond)

	var crash *golden.Crash
	var exitErr *exec.ExitError
	switch {
	case runErr != nil && ctx.Err() == context.DeadlineExceeded:
		crash = &golden.Crash{Hang: true, Reason: fmt.Sprintf("no exit within the %v timeout, process group killed; last output: %s", c.timeout, lg.lastLine())}
		lg.end(fmt.Sprintf("killed: no exit within %v", c.timeout))
	case errors.As(runErr, &exitErr):
		crash = &golden.Crash{Reason: fmt.Sprintf("%v: %s", exitErr, lg.lastLine())}
		lg.end(fmt.Sprintf("%v after %v", exitErr, elapsed))
	case runErr != nil:
		lg.end(runErr.Error())
		return nil, fmt.Errorf("%s: %w", args[0], runErr)
	default:
		lg.end(fmt.Sprintf("exit status 0 after %v", elapsed))
	}
	if crash != nil && r.Log != "" {
		crash.Log = r.Log
	}

	path := golden.TracePath(out, r.PromptID)
	var tr *golden.Trace
	var o Output
	if crash == nil {
		if tr, err = golden.ReadTrace(path); err != nil {
			return nil, fmt.Errorf("%s exited 0 but wrote no usable trace: %w", args[0], err)
		}
	} else {
		var cut bool
		if tr, cut, err = golden.ReadCrashedTrace(path); err != nil {
			return nil, fmt.Errorf("%s: %w; reading what it wrote: %w", args[0], crash, err)
		}
		if cut {
			o.Notes = append(o.Notes, fmt.Sprintf("%s: the last line of %s was cut short when the engine stopped; it was dropped", r.PromptID, filepath.Base(path)))
		}
	}
	for _, rec := range tr.Records {
		st, ok := golden.StageByName(rec.TensorName)
		if ok && rec.PromptID == r.PromptID && r.Sel.Want(st, rec.Layer, rec.PosID) {
			o.Records = append(o.Records, rec)
		}
	}
	note, err := keepRows(o.Records, out, r.RowsDir, r.PromptID)
	if err != nil {
		return nil, err
	}
	if note != "" {
		o.Notes = append(o.Notes, note)
	}
	if crash != nil {
		return &o, crash
	}
	return &o, nil
}

func routeOf(r Run) string {
	if r.Route == "" {
		return golden.RoutePrefill
	}
	return r.Route
}

// prepare writes the prompt, token and plan files into dir and returns the engine's
// environment and arguments.
func (c *Command) prepare(r Run, dir, out string) (env, args []string, err error) {
	ids := make([]string, len(r.Tokens))
	for i, tok := range r.Tokens {
		ids[i] = strconv.Itoa(int(tok))
	}
	tokensFile, promptFile, planFile := filepath.Join(dir, "tokens.txt"), filepath.Join(dir, "prompt.txt"), filepath.Join(dir, "plan.json")
	text := r.Text
	if text == "" {
		text = strings.Join(ids, ",")
	}
	if err := os.WriteFile(tokensFile, []byte(strings.Join(ids, ",")), 0o644); err != nil {
		return nil, nil, err
	}
	if err := os.WriteFile(promptFile, []byte(text), 0o644); err != nil {
		return nil, nil, err
	}
	if err := writePlanFile(planFile, newPlanFile(r, golden.TracePath(out, r.PromptID))); err != nil {
		return nil, nil, err
	}
	repl := strings.NewReplacer("{model}", c.model, "{prompt}", promptFile, "{tokens}", tokensFile,
		"{prompt_id}", r.PromptID, "{out}", out)
	args = make([]string, len(c.args))
	for i, a := range c.args {
		args[i] = repl.Replace(a)
	}
	env = append(inheritedEnv(), PlanEnv(r)...)
	env = append(env, EnvTraceOutDir+"="+out, EnvTracePlan+"="+planFile)
	return env, args, nil
}

// PlanEnv is the seed's environment for a run's plan, with the route.
func PlanEnv(r Run) []string {
	env := []string{EnvB361 + "=1", EnvTraceStage + "=1", EnvPromptID + "=" + r.PromptID,
		EnvMaxNewTokens + "=" + strconv.Itoa(r.MaxNewTokens), EnvTraceRoute + "=" + routeOf(r)}
	layers := make([]string, 0)
	for _, l := range r.Sel.Layers() {
		layers = append(layers, strconv.Itoa(l))
	}
	env = append(env, trace.EnvStageLayers+"="+strings.Join(layers, ","))
	for _, st := range r.Sel.Stages() {
		env = append(env, trace.EnvStagePrefix+strings.ToUpper(st.String())+"=1")
	}
	for _, p := range r.Sel.Positions() {
		env = append(env, trace.EnvPosPrefix+strconv.Itoa(p)+"=1")
	}
	if len(r.Faults) > 0 {
		env = append(env, EnvInject+"="+engine.FormatFaults(r.Faults))
	}
	return env
}

// inheritedEnv is the process environment without GRETA_* variables: the engine gets this
// run's plan and faults, not the calling process's.
func inheritedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRETA_") {
			env = append(env, kv)
		}
	}
	return env
}
