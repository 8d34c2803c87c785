// Package myengine is an inference engine of another module, bisected through gretatest's
// public engine API: it wraps the CPU reference (the "cpu" engine gretatest registers), as a
// team would wrap its own kernels, and can carry a planted bug.
package myengine

import (
	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// Engine is the CPU reference with an optional bug: a fault applied to the rows of one stage
// inside the forward pass, so every later stage computes from the wrong values, as a bad
// kernel's would.
type Engine struct {
	inner engine.Engine
	bugs  []engine.Fault
	outer *engine.Tap // the tap of the current run ...
	tap   *engine.Tap // ... and the one the inner engine sees: the bugs first
}

// New returns a factory of engines carrying bugs, faults in GRETA_INJECT's syntax ("" for
// none), e.g. "stage=attn_ctx,layer=3,pos>=2,scale=1.01".
func New(bugs string) (engine.Factory, error) {
	faults, err := engine.ParseFaults(bugs)
	if err != nil {
		return nil, err
	}
	return func(m *engine.Model) (engine.Engine, error) {
		resolved, err := engine.ResolveFaults(faults, m.Config.HeadDim, m.Config.StageWidth)
		if err != nil {
			return nil, err
		}
		inner, err := engine.Open("cpu", m)
		if err != nil {
			return nil, err
		}
		return &Engine{inner: inner, bugs: resolved}, nil
	}, nil
}

// Forward runs the inner engine with the bugs applied before the run's own tap sees the rows.
func (e *Engine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
	if tap != e.outer { // a new run: one derived tap for all of its calls
		e.outer, e.tap = tap, tap.WithFaults(e.bugs...)
	}
	return e.inner.Forward(tokens, pos0, e.tap)
}

// Reset empties the KV cache.
func (e *Engine) Reset() { e.inner.Reset() }

// Device is the CPU's: with no bug this engine computes the reference's bits, so it is
// compared with the CPU goldens exactly.
func (e *Engine) Device() string { return e.inner.Device() }

// Close releases the inner engine.
func (e *Engine) Close() error { return e.inner.Close() }
