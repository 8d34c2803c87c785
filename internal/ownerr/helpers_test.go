package ownerr_test

import (
	"sync"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

var tinyModel = sync.OnceValues(func() (*model.Model, error) { return model.Open(model.TinySpec) })

func tiny(t testing.TB) *model.Model {
	t.Helper()
	m, err := tinyModel()
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func standard(t testing.TB, m *model.Model, id string) prompts.Prompt {
	t.Helper()
	p, err := prompts.Standard(id, m.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// onShort returns the tiny model, p0_short and the selection of plan for it.
func onShort(t testing.TB, plan trace.Plan) (*model.Model, prompts.Prompt, *engine.Selection) {
	t.Helper()
	m := tiny(t)
	p := standard(t, m, prompts.P0Short)
	return m, p, plan.Resolve(m.Config.NLayer, len(p.Tokens))
}

// keeper returns the Keep of a run for rows.
type keeper func(rows *ownerr.Rows, sel *engine.Selection, nLayer int) *driver.Keep

// runKeeping runs prompt p through e with plan and faults, keeping rows for sel with keep,
// and returns the run and its records.
func runKeeping(t testing.TB, e engine.Engine, m *model.Model, p prompts.Prompt, plan trace.Plan, sel *engine.Selection,
	keep keeper, faults ...engine.Fault) (ownerr.Run, []golden.Record) {
	t.Helper()
	rows := ownerr.NewRows()
	res, err := driver.Run(e, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan, Faults: faults,
		Keep: keep(rows, sel, m.Config.NLayer)})
	if err != nil {
		t.Fatal(err)
	}
	return ownerr.Run{Config: m.Config, Rows: rows, Prompt: len(p.Tokens)}, res.Records
}

func openRef(t testing.TB, m *model.Model, f64 bool) *ref.Engine {
	t.Helper()
	newE := ref.New
	if f64 {
		newE = ref.NewF64Acc
	}
	e, err := newE(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}
