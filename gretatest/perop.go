package gretatest

import (
	"fmt"
	"os"
	"slices"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/ref"
)

// An external engine cannot replay, but one that writes its raw rows (raw_file) gives the
// inputs of each of its stages: the reference recomputes each stage from the engine's own
// input rows (ownerr.PerOp), and the engine's row against that is the operation's own error,
// on real activations. It is judged like a replay (golden.PerOp): the first record in causal
// order whose own error exceeds its floor x ownerr.Factor. Beside the planned run the engine
// runs twice more: the rotated keys and values of every layer at every position (what the
// attention context at a position reads), and every stage of the layers the plan does not
// trace at the planned positions; so every operation's own error is known. When the first
// record over its floor could have been preceded at an untraced position, a last run traces
// its layer at every position up to it.

// perOpPossible reports whether the prompt can be judged per operation: the backend is an
// external engine compared with another device (the tolerance policy chosen by default) and
// every record it wrote kept its raw row.
func (s *session) perOpPossible(pol golden.Policy, cand []golden.Record) bool {
	if _, ok := s.cut.(*execTracer); !ok || s.cfg.policy != nil || pol.Name != golden.Tolerance.Name || len(cand) == 0 {
		return false
	}
	for _, r := range cand {
		if r.RawFile == "" {
			return false
		}
	}
	return true
}

// rowsOf runs the external engine on plan sel's rows of r and reads the raw rows it wrote.
func (s *session) rowsOf(r run, layers []int, allLayers bool, stages []golden.Stage, allPositions bool) (*ownerr.Rows, error) {
	dir, err := os.MkdirTemp("", "gretabisect-rows-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	q := r
	q.plan.Layers, q.plan.AllLayers, q.plan.Stages = layers, allLayers, stages
	if allPositions {
		q.plan.AllPositions = true
	}
	q.rows, q.note, q.keep = dir, nil, nil
	recs, err := s.cut.Trace(q, s.progress(q))
	if err != nil {
		return nil, fmt.Errorf("per-operation own error: the engine's extra run: %w", err)
	}
	return ownerr.RowsFromTrace(dir, recs)
}

// judgePerOp measures the own error of every operation of the planned positions from the
// external engine's rows (cand, kept in r.rows) and makes it the verdict of pr's result.
func (s *session) judgePerOp(pr *PromptReport, r run, cand []golden.Record) error {
	c := s.m.Config
	rows, err := ownerr.RowsFromTrace(r.rows, cand)
	if err != nil {
		return err
	}
	o := &Origin{}
	// The keys and values of every layer at every position: attention's inputs.
	kv, err := s.rowsOf(r, nil, true, []golden.Stage{golden.KPostRope, golden.V}, true)
	if err != nil {
		return err
	}
	rows.Add(kv)
	var gap []int
	for l := range c.NLayer {
		if !r.plan.AllLayers && !slices.Contains(r.plan.Layers, l) {
			gap = append(gap, l)
		}
	}
	if len(gap) > 0 {
		g, err := s.rowsOf(r, gap, false, nil, false)
		if err != nil {
			return err
		}
		rows.Add(g)
	}
	planned := s.everyLayer(r)
	recs, err := s.perOpRecords(r, rows, planned)
	if err != nil {
		return err
	}
	floors, source, err := s.floors()
	if err != nil {
		return err
	}
	first := floors.FirstOver(c, recs, ownerr.Factor)
	o.Steps = append(o.Steps, fmt.Sprintf("every operation of every layer recomputed from the engine's inputs at the planned positions (%d extra engine runs): %s",
		1+min(len(gap), 1), ownFinding(first)))
	recs, first, err = s.searchEarlier(r, o, floors, planned, recs, first, func(layer, last int) ([]ownerr.Record, string, error) {
		more, err := s.rowsOf(r, []int{layer}, false, nil, true)
		if err != nil {
			return nil, "", err
		}
		rows.Add(more)
		extra, err := s.perOpRecords(r, rows, layerUpTo(c, layer, last, len(r.tokens)+r.plan.MaxNewTokens))
		return extra, fmt.Sprintf("layer %d traced at every position up to %d", layer, last), err
	})
	if err != nil {
		return err
	}
	s.settleOwn(pr, o, ownerr.MethodPerOp, floors, source, recs, first)
	return nil
}

// perOpRecords recomputes sel's rows in the reference from the engine's rows, with the
// reference's own rows of the same prompt for the inherited and total errors.
func (s *session) perOpRecords(r run, rows *ownerr.Rows, sel *engine.Selection) ([]ownerr.Record, error) {
	refT, err := s.ownReference()
	if err != nil {
		return nil, err
	}
	re, ok := refT.e.(*ref.Engine)
	if !ok {
		return nil, fmt.Errorf("per-operation own error: the reference backend %q is not the CPU reference", refT.Device())
	}
	clean := r
	clean.faults, clean.keep, clean.rows, clean.note = nil, nil, "", nil
	key := fmt.Sprintf("perop|%s|%v|%v|%v", runKey(refT.Device(), s.cfg.model, clean), sel.Stages(), sel.Layers(), sel.Positions())
	refRows, err := lookup(s.cfg.cache, s.cfg.cache.rows, key, func() (*ownerr.Rows, error) {
		rows := ownerr.NewRows()
		if err := refT.keepRun(clean, ownerr.KeepRows(rows, sel, s.m.Config.NLayer), s.progress(clean)); err != nil {
			return nil, fmt.Errorf("per-operation own error: the reference's run: %w", err)
		}
		return rows, nil
	})
	if err != nil {
		return nil, err
	}
	refT.mu.Lock()
	defer refT.mu.Unlock()
	return ownerr.PerOp(re, ownerr.Run{Config: s.m.Config, Rows: refRows, Prompt: len(r.tokens)}, rows, sel)
}

// rowsDir is where an external engine's raw rows are kept: the artifacts' traces folder, or
// a folder of the session's own when no artifacts are written (per-operation own errors
// read them after the run).
func (s *session) rowsDir() string {
	if dir := s.artSub("traces"); dir != "" {
		return dir
	}
	if _, ok := s.cut.(*execTracer); !ok {
		return ""
	}
	s.tmpOnce.Do(func() { s.tmpRows, _ = os.MkdirTemp("", "gretabisect-rows-") })
	return s.tmpRows
}
