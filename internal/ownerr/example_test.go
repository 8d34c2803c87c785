package ownerr_test

import (
	"fmt"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// The replay policy on one prompt: the CPU reference's live run keeps the rows replay
// reads; a known-good build of the candidate gives the floors (calibration); a build with
// a kernel wrong by 1e-4 in attn_ctx of layer 3 is then caught exactly there, although end
// to end its rows stay within the tolerance policy's rel_l2 1e-3.
func Example() {
	m, _ := model.Open(model.TinySpec)
	p, _ := prompts.Standard(prompts.P0Short, m.Tokenizer)
	plan := trace.DefaultPlan()
	plan.AllLayers = true
	sel := plan.Resolve(m.Config.NLayer, len(p.Tokens))

	cpu, _ := ref.New(&m.Model)
	defer cpu.Close()
	rows := ownerr.NewRows()
	driver.Run(cpu, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan,
		Keep: ownerr.KeepForReplay(rows, sel, m.Config.NLayer)})
	run := ownerr.Run{Config: m.Config, Rows: rows, Prompt: len(p.Tokens)}

	cand, _ := ref.NewF64Acc(&m.Model) // another device, as far as the reference can tell
	defer cand.Close()
	clean, _ := ownerr.Own(cand, run, sel, ownerr.Options{})
	floors := ownerr.Calibrate(ownerr.MethodReplay, clean)
	fmt.Println("clean build:", floors.FirstOver(m.Config, clean, ownerr.Factor) == nil)

	bug := engine.Fault{Stage: golden.AttnCtx, Layer: 3, PosMin: 2, PosMax: -1, Scale: 1.0001}
	buggy, _ := ownerr.Own(cand, run, sel, ownerr.Options{Faults: []engine.Fault{bug}})
	first := floors.FirstOver(m.Config, buggy, ownerr.Factor)
	fmt.Printf("FIRST_FAIL %v: own error %.1e, over %d x its floor\n", first.Key, first.Own.RelL2, ownerr.Factor)
	// Output:
	// clean build: true
	// FIRST_FAIL attn_ctx layer 3 pos 2: own error 1.0e-04, over 4 x its floor
}
