package gretatest

import (
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/execengine"
	"github.com/gretabisect/gretabisect/internal/model"
)

// execPrefix starts a backend name that runs an external engine.
const execPrefix = execengine.Prefix

// Environment an external engine receives besides the seed's trace variables
// (GRETA_TRACE_STAGE_LAYERS, GRETA_TRACE_B3_61_<STAGE>, GRETA_TRACE_B3_61_POS_<N>).
const (
	EnvB361         = execengine.EnvB361         // "1": the B3.61 trace is on
	EnvTraceStage   = execengine.EnvTraceStage   // "1": stage tracing is on
	EnvTraceOutDir  = execengine.EnvTraceOutDir  // folder receiving <prompt_id>_trace.jsonl
	EnvPromptID     = execengine.EnvPromptID     // the prompt's id
	EnvMaxNewTokens = execengine.EnvMaxNewTokens // tokens to generate after the prompt
	EnvTraceRoute   = execengine.EnvTraceRoute   // "prefill" or "decode": how to compute the prompt
	EnvTracePlan    = execengine.EnvTracePlan    // a JSON file holding the whole resolved plan
)

// execDevice is the device an external engine's traces are filed under.
const execDevice = "exec"

// execTracer runs an external engine once per traced run (see execengine.Command.Trace for
// the command line, its placeholders and the environment it gets). A run that crashes or
// hangs returns what the engine wrote with a *golden.Crash.
type execTracer struct {
	cmd *execengine.Command
	m   *model.Model
}

func newExecTracer(command, modelSpec string, m *model.Model, timeout time.Duration) (*execTracer, error) {
	cmd, err := execengine.New(command, modelSpec, timeout)
	if err != nil {
		return nil, err
	}
	return &execTracer{cmd: cmd, m: m}, nil
}

func (t *execTracer) Device() string { return execDevice }

// Variant is the command line: another binary or other flags may compute differently.
func (t *execTracer) Variant() string { return t.cmd.String() }
func (t *execTracer) Close() error    { return nil }

func (t *execTracer) Trace(r run, progress func(done, total int)) ([]golden.Record, error) {
	out, err := t.cmd.Trace(execengine.Run{
		PromptID: r.prompt.ID, Text: r.prompt.Text, Tokens: r.tokens,
		Sel: r.plan.Resolve(t.m.Config.NLayer, len(r.tokens)), MaxNewTokens: r.plan.MaxNewTokens,
		Faults: r.faults, Log: r.log, RowsDir: r.rows,
	})
	if out == nil {
		return nil, err
	}
	for _, n := range out.Notes {
		r.notef("%s", n)
	}
	if progress != nil && err == nil {
		progress(len(r.tokens)+r.plan.MaxNewTokens, len(r.tokens)+r.plan.MaxNewTokens)
	}
	return out.Records, err
}
