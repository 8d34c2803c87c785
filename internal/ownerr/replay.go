package ownerr

import (
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
)

// Record is the own error of one row of a candidate backend.
type Record struct {
	Key
	// Own is the row's own error, from raw rows: with Own and Replay, the candidate's row
	// computed from the reference's inputs against the reference's row; with PerOp, the
	// candidate's row against the reference's operation applied to the candidate's own
	// input rows. RelL2 is relative to the reference's row (Replay) or the recomputed row
	// (PerOp). It is valid only when Missing is empty.
	Own golden.Diff
	// Missing names a row whose absence leaves Own unknown: never guessed.
	Missing string
	// Total is the end-to-end error, the candidate's row of its own run against the
	// reference's row, and Inherited the part of it that came in with the inputs: the
	// candidate's row against its replayed row (Replay), or the recomputed row against the
	// reference's (PerOp). nil where a row is missing.
	Total, Inherited *golden.Diff
}

// Known reports whether Own was computed.
func (r *Record) Known() bool { return r.Missing == "" }

// GoldenKey returns the record's key in golden's terms, for golden.CausalOrder and reports.
func (r *Record) GoldenKey(promptID string) golden.Key {
	return golden.Key{PromptID: promptID, PosID: r.Pos, Layer: r.Layer, TensorName: r.Stage.String()}
}

// Run is the reference's run of one prompt, kept for own errors.
type Run struct {
	Config model.Config
	// Rows are the reference's rows: KeepForReplay's for Own and Replay, KeepRows' (or
	// none) for PerOp.
	Rows *Rows
	// Prompt is the number of prompt positions; later positions were generated tokens, each
	// run as a decode step. 0: every position is a prompt position.
	Prompt int
	// Route is the route of the prompt, golden.RoutePrefill (one batched pass, the default)
	// or golden.RouteDecode (one position at a time).
	Route string
}

// Options are what a candidate adds to a replay.
type Options struct {
	// Faults are planted in the candidate during the replay, as in its own run.
	Faults []engine.Fault
	// Candidate holds the candidate's rows of its own run (KeepRows): they give Total and
	// Inherited, and embed_out's own error. nil: those stay unknown.
	Candidate *Rows
}

// Own computes the own error of every selected row by replay: cand runs each selected layer
// alone, positions 0 to the last selected one, starting from the reference's residual
// stream entering that layer, and each selected row it computes is compared with the
// reference's row of the same run. When logits are selected, the final norm and output
// projection are replayed on the reference's residual leaving the last layer. embed_out
// inherits nothing: its own error is its end-to-end error, known from opt.Candidate.
// Records come in causal order (golden.CausalOrder with the run's decode start).
//
// Cost: one forward pass of cand over the layers (and positions) replayed, and the
// reference's rows (ref.Rows, KeepForReplay): the residual of every replayed layer at every
// position, dim float32 values each.
func Own(cand engine.Replayer, ref Run, sel *engine.Selection, opt Options) ([]Record, error) {
	var out []Record
	for _, l := range replayLayers(sel, ref.Config.NLayer) {
		recs, err := replay(cand, ref, l, l, sel, opt)
		if err != nil {
			return nil, err
		}
		out = append(out, recs...)
	}
	if slices.Contains(sel.Stages(), golden.EmbedOut) {
		for _, p := range sel.Positions() {
			out = append(out, embedOwn(ref, p, opt.Candidate))
		}
	}
	ref.sort(out)
	return out, nil
}

// Replay replays layers lo..hi of cand in one go (0 <= lo <= hi <= n_layer; n_layer: the
// final norm and logits) from the reference's residual stream entering layer lo, and
// compares the rows of every layer lo..hi at the stages and positions sel selects with the
// reference's. For a layer after lo the error includes what it inherited from the replayed
// layers before it: a range whose last rows are within their floors holds no layer that is
// wrong by more, which is what a bisection over layers asks.
func Replay(cand engine.Replayer, ref Run, lo, hi int, sel *engine.Selection, opt Options) ([]Record, error) {
	recs, err := replay(cand, ref, lo, hi, sel, opt)
	if err != nil {
		return nil, err
	}
	ref.sort(recs)
	return recs, nil
}

func replay(cand engine.Replayer, ref Run, lo, hi int, sel *engine.Selection, opt Options) ([]Record, error) {
	c := ref.Config
	if err := driver.CheckReplay(c, lo, hi, 0, c.Dim); err != nil {
		return nil, fmt.Errorf("ownerr: %w", err)
	}
	positions := sel.Positions()
	if len(positions) == 0 {
		return nil, nil
	}
	last := positions[len(positions)-1]
	var layers []int
	for l := lo; l <= min(hi, c.NLayer-1); l++ {
		layers = append(layers, l)
	}
	comp := &comparer{ref: ref.Rows, cand: opt.Candidate}
	tap := &engine.Tap{
		Sel:    engine.NewSelection(sel.Stages(), layers, c.NLayer, positions, last+1),
		Faults: opt.Faults,
		Sink:   comp.sink,
	}
	rows := make([]float32, 0, c.Dim)
	for _, call := range ref.calls(last) {
		rows = rows[:0]
		for p := call.pos0; p < call.pos0+call.n; p++ {
			k := inputKey(lo, p, c.NLayer)
			in := ref.Rows.Row(k)
			if len(in) != c.Dim {
				return nil, fmt.Errorf("ownerr: replay of layers %d..%d: the reference's %s is missing (keep it with KeepForReplay)",
					lo, hi, k)
			}
			rows = append(rows, in...)
		}
		if err := cand.Replay(lo, hi, call.pos0, rows, tap); err != nil {
			return nil, fmt.Errorf("ownerr: %s: %w", cand.Device(), err)
		}
	}
	return comp.recs, comp.err
}

// call is one Replay call: positions pos0..pos0+n-1.
type call struct{ pos0, n int }

// calls splits positions 0..last into the calls that compute them as the run did: the
// prompt in one call (prefill route) or one per position (decode route), then one per
// generated position. Logits are replayed the same way, so that a device computes them in
// products of the same rows as in the run.
func (ref Run) calls(last int) []call {
	var out []call
	prompt := ref.prompt(last)
	if ref.Route == golden.RouteDecode {
		prompt = 0
	}
	if prompt > 0 {
		out = append(out, call{0, prompt})
	}
	for p := prompt; p <= last; p++ {
		out = append(out, call{p, 1})
	}
	return out
}

// prompt returns the prompt positions among 0..last.
func (ref Run) prompt(last int) int {
	if ref.Prompt <= 0 || ref.Prompt > last+1 {
		return last + 1
	}
	return ref.Prompt
}

// sort puts recs in causal order.
func (ref Run) sort(recs []Record) {
	start := -1
	if ref.Prompt > 0 {
		start = ref.Prompt
	}
	order := golden.CausalOrder(start)
	slices.SortStableFunc(recs, func(a, b Record) int { return order(a.GoldenKey(""), b.GoldenKey("")) })
}

// comparer turns the replayed rows the tap hands over into records. Engines may call the
// sink from a goroutine of their own.
type comparer struct {
	ref, cand *Rows
	mu        sync.Mutex
	recs      []Record
	err       error
}

func (c *comparer) sink(st golden.Stage, layer, pos int, row []float32) {
	k := Key{st, layerOf(st, layer), pos}
	rec, err := compare(k, row, c.ref, c.cand, true)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.recs = append(c.recs, rec)
	c.err = errors.Join(c.err, err)
}

// compare makes the record of k from own, the candidate's row computed from the reference's
// inputs (replay), against the reference's row; cand, when given, adds the end-to-end error.
// With replayed false own is the reference's recomputation from the candidate's inputs
// (PerOp): the roles of the rows swap.
func compare(k Key, own []float32, ref, cand *Rows, replayed bool) (Record, error) {
	rec := Record{Key: k}
	var base, candRow []float32
	if ref != nil {
		base = ref.Row(k)
	}
	if cand != nil {
		candRow = cand.Row(k)
	}
	var err error
	diff := func(x, y []float32) *golden.Diff {
		d, e := golden.ExactDiff(x, y)
		if e != nil {
			err = fmt.Errorf("ownerr: %s: %w", k, e)
			return nil
		}
		return &d
	}
	if replayed {
		if base == nil {
			rec.Missing = "the reference's " + k.String()
			return rec, nil
		}
		if d := diff(own, base); d != nil {
			rec.Own = *d
		}
		if candRow != nil {
			rec.Total, rec.Inherited = diff(candRow, base), diff(candRow, own)
		}
		return rec, err
	}
	if d := diff(candRow, own); d != nil {
		rec.Own = *d
	}
	if base != nil {
		rec.Total, rec.Inherited = diff(candRow, base), diff(own, base)
	}
	return rec, err
}

// embedOwn is embed_out's record: it reads only its token, so its own error is its
// end-to-end error.
func embedOwn(ref Run, pos int, cand *Rows) Record {
	k := Key{golden.EmbedOut, -1, pos}
	if cand == nil || cand.Row(k) == nil {
		return Record{Key: k, Missing: "the candidate's " + k.String() + " (its own error is its end-to-end error)"}
	}
	rec, err := compare(k, cand.Row(k), ref.Rows, cand, true)
	if err != nil {
		rec.Missing = err.Error()
	}
	return rec
}
