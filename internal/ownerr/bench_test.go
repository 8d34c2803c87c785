package ownerr_test

import (
	"os"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
)

// EnvBenchModel names a GGUF file for BenchmarkOwn (a tinyllama-preset F32 model, say:
// gretabisect synth --preset tinyllama --dtype f32 --out FILE); without it the tiny model.
const EnvBenchModel = "GRETA_BENCH_MODEL"

// BenchmarkOwn is what own errors cost for p6_len_32 with the default plan over every
// layer: the reference's live run keeping the replay inputs (reference-run: seconds and
// the megabytes of rows kept), then the replay of one layer over every position by a
// candidate (replay-layer: the reference itself, and the float64 candidate). Own errors of
// every layer cost n_layer replays, one forward pass.
//
//	GRETA_BENCH_MODEL=/tmp/tl.gguf go test -run '^$' -bench Own -benchtime 1x ./internal/ownerr
func BenchmarkOwn(b *testing.B) {
	spec := os.Getenv(EnvBenchModel)
	if spec == "" {
		spec = model.TinySpec
	}
	m, err := model.Open(spec)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	c := m.Config
	p, err := prompts.Standard(prompts.P6Len32, m.Tokenizer)
	if err != nil {
		b.Fatal(err)
	}
	plan := allLayers()
	sel := plan.Resolve(c.NLayer, len(p.Tokens))
	var run ownerr.Run
	b.Run("reference-run", func(b *testing.B) {
		e := openRef(b, m, false)
		cpu := cpuTime()
		for b.Loop() {
			rows := ownerr.NewRows()
			if _, err := driver.Run(e, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan,
				Keep: ownerr.KeepForReplay(rows, sel, c.NLayer)}); err != nil {
				b.Fatal(err)
			}
			run = ownerr.Run{Config: c, Rows: rows, Prompt: len(p.Tokens)}
		}
		b.ReportMetric(float64(run.Rows.Bytes())/1e6, "MB-kept")
		b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/run")
		b.ReportMetric((cpuTime()-cpu)/float64(b.N), "cpu-s/run")
	})
	if run.Rows == nil {
		b.Skip("no reference run")
	}
	one := engine.NewSelection(sel.Stages(), []int{c.NLayer / 2}, c.NLayer, sel.Positions(), len(p.Tokens)+plan.MaxNewTokens)
	for _, cand := range []struct {
		name string
		new  func(*engine.Model) (*ref.Engine, error)
	}{{ref.Name, ref.New}, {ref.F64AccName, ref.NewF64Acc}} {
		b.Run("replay-layer/"+cand.name, func(b *testing.B) {
			e, err := cand.new(&m.Model)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			var recs []ownerr.Record
			cpu := cpuTime()
			for b.Loop() {
				if recs, err = ownerr.Own(e, run, one, ownerr.Options{}); err != nil {
					b.Fatal(err)
				}
			}
			worst := 0.0
			for _, r := range recs {
				worst = max(worst, r.Own.RelL2)
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/layer")
			b.ReportMetric((cpuTime()-cpu)/float64(b.N), "cpu-s/layer")
			b.ReportMetric(worst, "worst-own-rel_l2")
		})
	}
}
