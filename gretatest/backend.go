package gretatest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	_ "github.com/gretabisect/gretabisect/internal/ref" // registers the "cpu" backend
	"github.com/gretabisect/gretabisect/internal/trace"
)

// run is one traced run of a prompt.
type run struct {
	prompt Prompt
	tokens []int32
	plan   trace.Plan
	faults []engine.Fault

	// What an external engine leaves: log is the file its output is appended to, rows the
	// folder keeping its raw rows ("" keeps neither), note receives what the reader must
	// know of its trace (nil drops it). In-process engines have nothing to leave.
	log, rows string
	note      func(string)
	// rawDir, when set, is an existing folder where an in-process engine writes every traced
	// row as .npy, raw_file naming it (the shape's run; an external engine keeps its rows in
	// rows).
	rawDir string
	// keep, when set, receives an in-process engine's raw rows beside the records (the replay
	// policy keeps the backend's own rows of its planned run this way).
	keep *driver.Keep
}

func (r run) notef(format string, args ...any) {
	if r.note != nil {
		r.note(fmt.Sprintf(format, args...))
	}
}

// tracer runs prompts through one backend and returns their records in causal order. A run
// that ended early returns the records written before the end with a *golden.Crash.
type tracer interface {
	Device() string
	Variant() string // the build of the backend's arithmetic, for golden manifests ("" when one)
	Trace(r run, progress func(done, total int)) ([]golden.Record, error)
	Close() error
}

// openTracer starts backend name ("cpu", "hip", "exec:COMMAND", any registered engine);
// timeout bounds each run of an external engine.
func (c *config) openTracer(name string, m *model.Model) (tracer, error) {
	if cmd, ok := strings.CutPrefix(name, execPrefix); ok {
		return newExecTracer(cmd, c.model, m, *c.timeout)
	}
	open := func() (engine.Engine, error) { return engine.Open(name, &m.Model) }
	if f, ok := c.engines[name]; ok {
		open = func() (engine.Engine, error) { return f(&m.Model) }
	}
	e, err := open()
	if err != nil {
		return nil, err
	}
	return &engineTracer{e: e, m: m}, nil
}

// engineTracer runs an in-process engine. An engine owns one KV cache, so runs take turns.
type engineTracer struct {
	mu sync.Mutex
	e  engine.Engine
	m  *model.Model
}

func (t *engineTracer) Device() string { return t.e.Device() }

func (t *engineTracer) Variant() string {
	if v, ok := t.e.(engine.Varianter); ok {
		return v.Variant()
	}
	return ""
}
func (t *engineTracer) Close() error { return t.e.Close() }

func (t *engineTracer) Trace(r run, progress func(done, total int)) ([]golden.Record, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	res, err := driver.Run(t.e, t.m, driver.Request{
		PromptID: r.prompt.ID, Tokens: r.tokens, Plan: r.plan, Faults: r.faults, RawDir: r.rawDir, Keep: r.keep, Progress: progress,
	})
	if res == nil {
		return nil, err
	}
	return res.Records, err
}

// Cache keeps loaded models and reference runs so that Bisect calls sharing it (Share) load
// each model and run the reference for each (prompt, plan) once. It is safe for concurrent
// use by parallel tests.
type Cache struct {
	mu     sync.Mutex
	models map[string]*entry[*model.Model]
	runs   map[string]*entry[[]golden.Record]
	rows   map[string]*entry[*ownerr.Rows] // the reference's rows the replay policy keeps
}

type entry[T any] struct {
	once sync.Once
	val  T
	err  error
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{models: map[string]*entry[*model.Model]{}, runs: map[string]*entry[[]golden.Record]{},
		rows: map[string]*entry[*ownerr.Rows]{}}
}

func lookup[T any](c *Cache, m map[string]*entry[T], key string, f func() (T, error)) (T, error) {
	c.mu.Lock()
	e, ok := m[key]
	if !ok {
		e = &entry[T]{}
		m[key] = e
	}
	c.mu.Unlock()
	e.once.Do(func() { e.val, e.err = f() })
	return e.val, e.err
}

func (c *Cache) model(spec string, load func() (*model.Model, error)) (*model.Model, error) {
	return lookup(c, c.models, spec, load)
}

// Close releases the models the cache opened (memory-mapped GGUF files).
func (c *Cache) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for spec, e := range c.models {
		if e.val != nil && e.val.File != nil {
			errs = append(errs, e.val.Close())
		}
		delete(c.models, spec)
	}
	return errors.Join(errs...)
}

// reference returns the records of a fault-free run of r on the reference backend.
func (c *Cache) reference(backend, modelSpec string, r run, trace func() ([]golden.Record, error)) ([]golden.Record, error) {
	return lookup(c, c.runs, runKey(backend, modelSpec, r), trace)
}

// runKey identifies a fault-free run: backend, model, prompt, its tokens and the plan.
func runKey(backend, modelSpec string, r run) string {
	h := sha256.New()
	for _, t := range r.tokens {
		binary.Write(h, binary.LittleEndian, t)
	}
	return fmt.Sprintf("%s|%s|%s|%x|%+v", backend, modelSpec, r.prompt.ID, h.Sum(nil), r.plan)
}
