package ref

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/synth"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// EnvBenchModel names a GGUF file for the large-model benchmarks; without it they generate
// the tinyllama preset in F32 (4.4 GB, about 40 s) into a temporary directory, once per run.
const EnvBenchModel = "GRETA_BENCH_MODEL"

// generated is the tinyllama file generated once per test binary; TestMain removes it.
var generated struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if generated.dir != "" {
		os.RemoveAll(generated.dir)
	}
	os.Exit(code)
}

func benchModel(b *testing.B) *model.Model {
	b.Helper()
	if testing.Short() {
		b.Skip("large model benchmark skipped in -short mode")
	}
	path := os.Getenv(EnvBenchModel)
	if path == "" {
		generated.once.Do(func() {
			if generated.dir, generated.err = os.MkdirTemp("", "ref-bench-"); generated.err != nil {
				return
			}
			generated.path = filepath.Join(generated.dir, "tinyllama-f32.gguf")
			generated.err = synth.WriteFile(generated.path, synth.TinyLlama, synth.F32, 0, nil)
		})
		if generated.err != nil {
			b.Fatal(generated.err)
		}
		path = generated.path
	}
	m, err := model.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { m.Close() })
	return m
}

func benchEngine(b *testing.B, m *model.Model) *Engine {
	b.Helper()
	e, err := New(&m.Model)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { e.Close() })
	return e
}

func reportTokens(b *testing.B, tokens int) {
	s := b.Elapsed().Seconds()
	b.ReportMetric(float64(tokens*b.N)/s, "tokens/s")
	b.ReportMetric(s*1000/float64(tokens*b.N), "ms/token")
}

// BenchmarkPrefill512 is one batched pass over 512 prompt tokens, untraced.
func BenchmarkPrefill512(b *testing.B) {
	m := benchModel(b)
	e := benchEngine(b, m)
	tokens := randomTokens(512, m.Config.Vocab, 1)
	for b.Loop() {
		if _, err := e.Forward(tokens, 0, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportTokens(b, len(tokens))
}

// BenchmarkDecode1653 is one decode step at position 1652, attending over 1653 cached
// positions. The cache holds zeros instead of a real prompt's keys and values: the work
// does not depend on the values, and filling it would take minutes.
func BenchmarkDecode1653(b *testing.B) {
	m := benchModel(b)
	e := benchEngine(b, m)
	tok := []int32{1}
	for b.Loop() {
		if _, err := e.Forward(tok, 1652, nil); err != nil {
			b.Fatal(err)
		}
	}
	reportTokens(b, 1)
}

// BenchmarkDefaultTrace is the bisect suite's work: the three standard prompts with the
// default plan on the tiny model, records hashed and sketched.
func BenchmarkDefaultTrace(b *testing.B) {
	m, err := model.Open(model.TinySpec)
	if err != nil {
		b.Fatal(err)
	}
	all, err := prompts.All(m.Tokenizer)
	if err != nil {
		b.Fatal(err)
	}
	e := benchEngine(b, m)
	n := 0
	for b.Loop() {
		n = 0
		for _, p := range all {
			res, err := driver.Run(e, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: trace.DefaultPlan()})
			if err != nil {
				b.Fatal(err)
			}
			n += len(p.Tokens) + len(res.Generated)
		}
	}
	reportTokens(b, n)
}

// BenchmarkCandidatePrefill is a 512-token prefill of the tiny model on the reference and
// on the float64-accumulating candidate: what the candidate costs in tests.
func BenchmarkCandidatePrefill(b *testing.B) {
	m, err := model.Open(model.TinySpec)
	if err != nil {
		b.Fatal(err)
	}
	tokens := randomTokens(512, m.Config.Vocab, 1)
	for _, c := range []struct {
		name string
		new  func(*engine.Model) (*Engine, error)
	}{{Name, New}, {F64AccName, NewF64Acc}} {
		b.Run(c.name, func(b *testing.B) {
			e, err := c.new(&m.Model)
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			for b.Loop() {
				if _, err := e.Forward(tokens, 0, nil); err != nil {
					b.Fatal(err)
				}
			}
			reportTokens(b, len(tokens))
		})
	}
}
