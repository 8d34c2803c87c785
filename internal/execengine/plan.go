package execengine

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// PlanFile is the JSON file GRETA_TRACE_PLAN names: one run's resolved plan in one place,
// the same rows the seed's variables select, so that an engine reads it in one step:
//
//	{"prompt_id": "p0_short", "prompt_tokens": 5, "max_new_tokens": 5, "route": "prefill",
//	 "layers": [0, 1, 2, 4, 8], "positions": [0, 1, ..., 9],
//	 "stages": ["embed_out", "residual_pre_attn", ..., "logits"],
//	 "trace_file": "/tmp/.../out/p0_short_trace.jsonl", "inject": ""}
//
// positions are absolute, prompt and generated, ascending; layers are the model layers whose
// per-layer stages are traced (embed_out and logits are traced at every position when they
// are among the stages); stages are in causal order.
type PlanFile struct {
	PromptID     string   `json:"prompt_id"`
	PromptTokens int      `json:"prompt_tokens"` // the prompt's length, BOS included
	MaxNewTokens int      `json:"max_new_tokens"`
	Route        string   `json:"route"`
	Layers       []int    `json:"layers"`
	Positions    []int    `json:"positions"`
	Stages       []string `json:"stages"`
	TraceFile    string   `json:"trace_file"`
	Inject       string   `json:"inject"` // faults, GRETA_INJECT's syntax; "" for none
}

func newPlanFile(r Run, traceFile string) PlanFile {
	p := PlanFile{
		PromptID: r.PromptID, PromptTokens: len(r.Tokens), MaxNewTokens: r.MaxNewTokens, Route: routeOf(r),
		Layers: r.Sel.Layers(), Positions: r.Sel.Positions(), Stages: []string{}, TraceFile: traceFile,
		Inject: engine.FormatFaults(r.Faults),
	}
	for _, st := range r.Sel.Stages() {
		p.Stages = append(p.Stages, st.String())
	}
	if p.Layers == nil {
		p.Layers = []int{}
	}
	if p.Positions == nil {
		p.Positions = []int{}
	}
	return p
}

func writePlanFile(path string, p PlanFile) error {
	b, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// ReadPlanFile reads a plan file.
func ReadPlanFile(path string) (PlanFile, error) {
	var p PlanFile
	b, err := os.ReadFile(path)
	if err != nil {
		return p, err
	}
	if err := json.Unmarshal(b, &p); err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// Plan is the trace plan of p for an engine built on this module: it selects p's rows, and
// every generated position when any is selected (more rows than asked are dropped by the
// reader). A stage name outside the table is an error.
func (p PlanFile) Plan() (trace.Plan, error) {
	plan := trace.Plan{Layers: p.Layers, Prefill: true, MaxNewTokens: p.MaxNewTokens, Stages: []golden.Stage{}}
	for _, name := range p.Stages {
		st, ok := golden.StageByName(name)
		if !ok {
			return plan, fmt.Errorf("plan file: unknown stage %q", name)
		}
		plan.Stages = append(plan.Stages, st)
	}
	for _, pos := range p.Positions {
		if pos < p.PromptTokens {
			plan.Positions = append(plan.Positions, pos)
		} else {
			plan.Decode = true
		}
	}
	if len(plan.Stages) == 0 || !slices.IsSorted(plan.Stages) {
		return plan, fmt.Errorf("plan file: stages %q: want at least one, in causal order", p.Stages)
	}
	return plan, nil
}
