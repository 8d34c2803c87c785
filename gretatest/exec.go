package gretatest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// execPrefix starts a backend name that runs an external engine.
const execPrefix = "exec:"

// Environment an external engine receives besides the seed's trace variables
// (GRETA_TRACE_STAGE_LAYERS, GRETA_TRACE_B3_61_<STAGE>, GRETA_TRACE_B3_61_POS_<N>).
const (
	EnvB361         = "GRETA_B3_61"          // "1": the B3.61 trace is on
	EnvTraceStage   = "GRETA_TRACE_STAGE"    // "1": stage tracing is on
	EnvTraceOutDir  = "GRETA_TRACE_OUT_DIR"  // folder receiving <prompt_id>_trace.jsonl
	EnvPromptID     = "GRETA_PROMPT_ID"      // the prompt's id
	EnvMaxNewTokens = "GRETA_MAX_NEW_TOKENS" // tokens to generate after the prompt
)

// execDevice is the device an external engine's traces are filed under.
const execDevice = "exec"

// execTracer runs an external engine once per traced run:
//
//	GRETA_BACKEND="exec:./greta_infer --model {model} --prompt-file {prompt}"
//
// The command is split at spaces (no quoting) and these placeholders are replaced in each
// argument: {model} the model spec (a GGUF path, or "tiny"), {prompt} a file holding the
// prompt's text (its token ids, comma-separated, when the prompt has no text), {tokens} a
// file holding the token ids (BOS included), {prompt_id}, and {out} the output folder.
// The engine gets the process environment plus GRETA_B3_61=1, GRETA_TRACE_STAGE=1,
// GRETA_TRACE_STAGE_LAYERS (the planned layers), GRETA_TRACE_B3_61_<STAGE>=1 for each
// planned stage, GRETA_TRACE_B3_61_POS_<N>=1 for each planned position (prompt and
// generated), GRETA_TRACE_OUT_DIR, GRETA_PROMPT_ID, GRETA_MAX_NEW_TOKENS and, with faults,
// GRETA_INJECT. It must write <out>/<prompt_id>_trace.jsonl in the seed's format; records
// outside the plan are dropped.
type execTracer struct {
	args      []string
	modelSpec string
	m         *model.Model
}

func newExecTracer(command, modelSpec string, m *model.Model) (*execTracer, error) {
	args := strings.Fields(command)
	if len(args) == 0 {
		return nil, fmt.Errorf("%s: no command", execPrefix)
	}
	return &execTracer{args: args, modelSpec: modelSpec, m: m}, nil
}

func (t *execTracer) Device() string { return execDevice }

// Variant is the command line: another binary or other flags may compute differently.
func (t *execTracer) Variant() string { return strings.Join(t.args, " ") }
func (t *execTracer) Close() error    { return nil }

func (t *execTracer) Trace(r run, progress func(done, total int)) ([]golden.Record, error) {
	dir, err := os.MkdirTemp("", "gretabisect-exec-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		return nil, err
	}
	ids := make([]string, len(r.tokens))
	for i, tok := range r.tokens {
		ids[i] = strconv.Itoa(int(tok))
	}
	tokensFile, promptFile := filepath.Join(dir, "tokens.txt"), filepath.Join(dir, "prompt.txt")
	text := r.prompt.Text
	if text == "" {
		text = strings.Join(ids, ",")
	}
	if err := os.WriteFile(tokensFile, []byte(strings.Join(ids, ",")), 0o644); err != nil {
		return nil, err
	}
	if err := os.WriteFile(promptFile, []byte(text), 0o644); err != nil {
		return nil, err
	}
	repl := strings.NewReplacer("{model}", t.modelSpec, "{prompt}", promptFile, "{tokens}", tokensFile,
		"{prompt_id}", r.prompt.ID, "{out}", out)
	args := make([]string, len(t.args))
	for i, a := range t.args {
		args[i] = repl.Replace(a)
	}

	sel := r.plan.Resolve(t.m.Config.NLayer, len(r.tokens))
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(inheritedEnv(), planEnv(sel, r)...)
	cmd.Env = append(cmd.Env, EnvTraceOutDir+"="+out)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w: %s", args[0], err, lastLine(stderr.String()))
	}
	tr, err := golden.ReadTrace(golden.TracePath(out, r.prompt.ID))
	if err != nil {
		return nil, fmt.Errorf("%s wrote no usable trace: %w", args[0], err)
	}
	if progress != nil {
		progress(len(r.tokens)+r.plan.MaxNewTokens, len(r.tokens)+r.plan.MaxNewTokens)
	}
	var recs []golden.Record
	for _, rec := range tr.Records {
		st, ok := golden.StageByName(rec.TensorName)
		if ok && sel.Want(st, rec.Layer, rec.PosID) {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}

// planEnv is the seed's environment for a resolved plan.
func planEnv(sel *trace.Selection, r run) []string {
	env := []string{EnvB361 + "=1", EnvTraceStage + "=1", EnvPromptID + "=" + r.prompt.ID,
		EnvMaxNewTokens + "=" + strconv.Itoa(r.plan.MaxNewTokens)}
	layers := make([]string, 0)
	for _, l := range sel.Layers() {
		layers = append(layers, strconv.Itoa(l))
	}
	env = append(env, trace.EnvStageLayers+"="+strings.Join(layers, ","))
	for _, st := range sel.Stages() {
		env = append(env, trace.EnvStagePrefix+strings.ToUpper(st.String())+"=1")
	}
	for _, p := range sel.Positions() {
		env = append(env, trace.EnvPosPrefix+strconv.Itoa(p)+"=1")
	}
	if len(r.faults) > 0 {
		env = append(env, EnvInject+"="+trace.FormatFaults(r.faults))
	}
	return env
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if s == "" {
		return "no output on stderr"
	}
	return s
}

// inheritedEnv is the process environment without GRETA_* variables: the engine gets this
// run's plan and faults, not the test process's.
func inheritedEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRETA_") {
			env = append(env, kv)
		}
	}
	return env
}
