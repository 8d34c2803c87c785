package driver

import (
	"cmp"
	"errors"
	"fmt"
	"slices"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Request is one traced run of a prompt.
type Request struct {
	PromptID string
	Tokens   []int32 // the prompt, BOS included
	Plan     trace.Plan
	Faults   []engine.Fault
	// Route computes the prompt: golden.RoutePrefill (the default: one batched pass) or
	// golden.RouteDecode (one token at a time through the KV cache). Generated tokens always
	// take the decode route.
	Route string
	// RawDir, when set, receives every traced row as a .npy file (the record's raw_file).
	RawDir string
	// Progress, when set, is called after each forward pass with the positions done so far
	// out of the prompt plus the generated tokens.
	Progress func(done, total int)
	// Keep, when set, receives raw rows beside the plan's records: what replay and
	// per-operation own error compare with.
	Keep *Keep
}

// Keep asks a run for raw rows. The engine computes and hands over every row of Sel, which
// may be more than the plan records; Put receives each row Want accepts (every row of Sel
// when Want is nil), after faults. row is only valid during the call, and Put may be
// called from several goroutines at once.
type Keep struct {
	Sel  *engine.Selection
	Want func(st golden.Stage, layer, pos int) bool
	Put  func(st golden.Stage, layer, pos int, row []float32)
}

// Result is what a run produced.
type Result struct {
	Records   []golden.Record // causal order
	Generated []int32         // greedy tokens after the prompt
}

// Run resets e, runs the prompt of req on its route, then greedily generates
// req.Plan.MaxNewTokens tokens, running each through the model on the decode route so that
// the decode phase has rows to trace, and returns the planned records.
//
// When the engine fails (a forward pass returns an error, as a GPU kernel fault does), Run
// returns what it recorded before the failure with a *golden.Crash whose reason is the
// engine's error: the caller can tell where the run stopped. A request it refuses comes back
// with a nil Result.
func Run(e engine.Engine, m *model.Model, req Request) (*Result, error) {
	cfg := m.Config
	n, gen := len(req.Tokens), req.Plan.MaxNewTokens
	switch {
	case n == 0:
		return nil, fmt.Errorf("engine: prompt %q: no tokens", req.PromptID)
	case gen < 0:
		return nil, fmt.Errorf("engine: prompt %q: max new tokens %d is negative", req.PromptID, gen)
	case n+gen > cfg.CtxLen:
		return nil, fmt.Errorf("engine: prompt %q: %d tokens + %d new tokens exceed the context length %d",
			req.PromptID, n, gen, cfg.CtxLen)
	}
	for i, t := range req.Tokens {
		if t < 0 || int(t) >= cfg.Vocab {
			return nil, fmt.Errorf("engine: prompt %q: token %d at position %d is outside the vocabulary (0..%d)",
				req.PromptID, t, i, cfg.Vocab-1)
		}
	}
	for i, f := range req.Faults {
		// A fault at a layer the model lacks would change nothing, and a rehearsal would
		// then pass for the wrong reason.
		if f.Stage.Info().PerLayer && f.Layer != engine.AnyLayer && (f.Layer < 0 || f.Layer >= cfg.NLayer) {
			return nil, fmt.Errorf("engine: fault %d (%s): layer %d is outside the model's %d layers (0..%d)",
				i+1, f, f.Layer, cfg.NLayer, cfg.NLayer-1)
		}
	}
	faults, err := engine.ResolveFaults(req.Faults, cfg.HeadDim, cfg.StageWidth)
	if err != nil {
		return nil, fmt.Errorf("engine: %w", err)
	}
	route := req.Route
	if route == "" {
		route = golden.RoutePrefill
	}
	if route != golden.RoutePrefill && route != golden.RouteDecode {
		return nil, fmt.Errorf("engine: prompt %q: unknown route %q (want %s or %s)",
			req.PromptID, route, golden.RoutePrefill, golden.RouteDecode)
	}

	rec := trace.NewRecorder(req.PromptID, n, cfg.NLayer, req.RawDir)
	rec.Tokens = append(make([]int32, 0, n+gen), req.Tokens...)
	rec.Route = route
	tap := &engine.Tap{Sel: req.Plan.Resolve(cfg.NLayer, n), Faults: faults, Sink: rec.Sink, SketchSink: rec.SinkSketched}
	if req.Keep != nil {
		keepRows(tap, req.Keep, cfg.NLayer, n+gen)
	}
	progress := func(done int) {
		if req.Progress != nil {
			req.Progress(done, n+gen)
		}
	}

	if p, ok := e.(engine.Progressor); ok && req.Progress != nil {
		p.SetProgress(progress)
		defer p.SetProgress(nil)
	}
	logits, err := runPrompt(e, req.Tokens, route, tap, progress)
	var generated []int32
	rec.Route = golden.RouteDecode
	for pos := n; err == nil && pos < n+gen; pos++ {
		next := int32(argmax(logits))
		generated = append(generated, next)
		rec.Tokens = append(rec.Tokens, next)
		logits, err = e.Forward([]int32{next}, pos, tap)
		if err != nil {
			err = fmt.Errorf("decode at position %d: %w", pos, err)
		}
		progress(pos + 1)
	}
	records, rerr := rec.Close()
	res := &Result{Records: records, Generated: generated}
	if err != nil {
		// In the order they were computed, as an engine writing them as it goes would have
		// left them: the last one is as far as the run got.
		order := golden.RouteOrder(route, n)
		slices.SortStableFunc(records, func(a, b golden.Record) int { return order(golden.KeyOf(a), golden.KeyOf(b)) })
		return res, &golden.Crash{Reason: fmt.Sprintf("engine: prompt %q on %s: %v", req.PromptID, e.Device(), errors.Join(err, rerr))}
	}
	if rerr != nil {
		return nil, fmt.Errorf("engine: prompt %q on %s: %w", req.PromptID, e.Device(), rerr)
	}
	return res, nil
}

func runPrompt(e engine.Engine, tokens []int32, route string, tap *engine.Tap, progress func(int)) ([]float32, error) {
	e.Reset()
	if route == golden.RoutePrefill {
		logits, err := e.Forward(tokens, 0, tap)
		if err != nil {
			return nil, fmt.Errorf("prefill of %d tokens: %w", len(tokens), err)
		}
		progress(len(tokens))
		return logits, nil
	}
	var logits []float32
	for pos := range tokens {
		var err error
		if logits, err = e.Forward(tokens[pos:pos+1], pos, tap); err != nil {
			return nil, fmt.Errorf("decode at position %d: %w", pos, err)
		}
		progress(pos + 1)
	}
	return logits, nil
}

// argmax returns the index of the largest logit, the lowest index on ties; NaN never wins.
func argmax(logits []float32) int {
	return trace.Top5(logits)[0]
}

// keepRows widens tap to the rows of k as well as its own, each sink filtering its own
// share: the engine sees one selection, the smallest product of stages, layers and positions
// that holds both.
func keepRows(tap *engine.Tap, k *Keep, nLayer, nPos int) {
	plan := tap.Sel
	tap.Sel = engine.NewSelection(union(plan.Stages(), k.Sel.Stages()), union(plan.Layers(), k.Sel.Layers()), nLayer,
		union(plan.Positions(), k.Sel.Positions()), nPos)
	keep := func(st golden.Stage, layer, pos int, row []float32) {
		if k.Sel.Want(st, layer, pos) && (k.Want == nil || k.Want(st, layer, pos)) {
			k.Put(st, layer, pos, row)
		}
	}
	sink, sketchSink := tap.Sink, tap.SketchSink
	tap.Sink = func(st golden.Stage, layer, pos int, row []float32) {
		if plan.Want(st, layer, pos) {
			sink(st, layer, pos, row)
		}
		keep(st, layer, pos, row)
	}
	tap.SketchSink = func(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch) {
		if plan.Want(st, layer, pos) {
			sketchSink(st, layer, pos, row, sk)
		}
		keep(st, layer, pos, row)
	}
}

func union[T cmp.Ordered](a, b []T) []T {
	out := slices.Concat(a, b)
	slices.Sort(out)
	return slices.Compact(out)
}
