//go:build rocm

package hip

import (
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// benchModel is GRETA_MODEL when set (the figures are for full-size F32 models:
// tinyllama, llama3.2-1b, qwen2.5-0.5b), else the tiny model.
func benchModel(b *testing.B) *model.Model {
	b.Helper()
	spec := os.Getenv(EnvBigModel)
	if spec == "" {
		spec = model.TinySpec
	}
	return testModel(b, spec)
}

// BenchmarkPrefill is the 1653-token prompt in one pass, with the default trace plan (rows
// hashed by a recorder, waited for) and untraced: the difference is the cost of tracing.
func BenchmarkPrefill(b *testing.B) {
	m := benchModel(b)
	e := openGPU(b, m)
	p, err := prompts.Standard(prompts.P6Len32, m.Tokenizer)
	if err != nil {
		b.Fatal(err)
	}
	n := len(p.Tokens)
	// traced: sketches computed on the device (what driver.Run does); traced-hostsketch:
	// every row sketched by the recorder on the host.
	for _, tc := range []struct {
		name   string
		device bool
	}{{"traced", true}, {"traced-hostsketch", false}} {
		b.Run(tc.name, func(b *testing.B) {
			sel := trace.DefaultPlan().Resolve(m.Config.NLayer, n)
			rows := 0
			var forward, closing time.Duration // Forward, then the recorder's drain in Close
			prefill := func() {
				rec := trace.NewRecorder(p.ID, n, m.Config.NLayer, "")
				tap := &engine.Tap{Sel: sel, Sink: rec.Sink}
				if tc.device {
					tap.SketchSink = rec.SinkSketched
				}
				t0 := time.Now()
				if _, err := e.Forward(p.Tokens, 0, tap); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				recs, err := rec.Close()
				forward += t1.Sub(t0)
				closing += time.Since(t1)
				if err != nil {
					b.Fatal(err)
				}
				rows = len(recs)
			}
			// One run before the clock starts: the first builds the sketch coefficient
			// tables and the staging buffers, once per engine.
			prefill()
			forward, closing = 0, 0
			for b.Loop() {
				prefill()
			}
			b.ReportMetric(float64(rows), "rows")
			b.ReportMetric(msPerOp(b), "ms/prefill")
			b.ReportMetric(float64(forward.Microseconds())/1e3/float64(b.N), "ms/forward")
			b.ReportMetric(float64(closing.Microseconds())/1e3/float64(b.N), "ms/close")
		})
	}
	// The engine's share of tracing: faults, gathers and copies, rows handed to a sink that
	// keeps nothing (the recorder's hashing and sketches are left out).
	b.Run("traced-nosink", func(b *testing.B) {
		sel := trace.DefaultPlan().Resolve(m.Config.NLayer, n)
		rows := 0
		tap := &engine.Tap{Sel: sel, Sink: func(golden.Stage, int, int, []float32) { rows++ }}
		for b.Loop() {
			if _, err := e.Forward(p.Tokens, 0, tap); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows)/float64(b.N), "rows")
		b.ReportMetric(msPerOp(b), "ms/prefill")
	})
	// The same with the device's sketches: the engine's share when it computes them.
	b.Run("traced-nosink-devsketch", func(b *testing.B) {
		sel := trace.DefaultPlan().Resolve(m.Config.NLayer, n)
		var rows atomic.Int64 // SketchSink runs on several goroutines
		tap := &engine.Tap{Sel: sel, Sink: func(golden.Stage, int, int, []float32) {},
			SketchSink: func(golden.Stage, int, int, []float32, *golden.Sketch) { rows.Add(1) }}
		for b.Loop() {
			if _, err := e.Forward(p.Tokens, 0, tap); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(rows.Load())/float64(b.N), "rows")
		b.ReportMetric(msPerOp(b), "ms/prefill")
	})
	b.Run("untraced", func(b *testing.B) {
		for b.Loop() {
			if _, err := e.Forward(p.Tokens, 0, nil); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(msPerOp(b), "ms/prefill")
	})
}

// BenchmarkDecode is one token at position 1652 after a 1652-token prefill (the KV cache
// holds 1653 positions), untraced.
func BenchmarkDecode(b *testing.B) {
	m := benchModel(b)
	e := openGPU(b, m)
	p, err := prompts.Standard(prompts.P6Len32, m.Tokenizer)
	if err != nil {
		b.Fatal(err)
	}
	last := len(p.Tokens) - 1
	if _, err := e.Forward(p.Tokens[:last], 0, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.Forward(p.Tokens[last:], last, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(msPerOp(b), "ms/token")
}

func msPerOp(b *testing.B) float64 {
	return float64(b.Elapsed()) / float64(b.N) / float64(time.Millisecond)
}
