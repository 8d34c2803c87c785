package gretatest

import (
	"fmt"
	"math"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Origin is where self-bisection isolated a divergence: the first record that disagrees in a
// trace of every layer and position that could have caused the first traced failure.
type Origin struct {
	Stage    golden.Stage
	Layer    int // -1 for embed_out, the model's layer count for logits
	Pos      int
	Category golden.Category
	// LayerRuns counts the extra runs that bisected the untraced layers before the first
	// failing traced layer: at most ceil(log2(gap))+1 for a gap of untraced layers.
	LayerRuns int
	// PositionRuns counts the extra runs that searched earlier positions: one tracing every
	// position of the isolated layer when the failure came through attention, one tracing
	// every layer at one position when it came through the residual stream from below.
	PositionRuns int
	// Steps says what each extra run found, in order.
	Steps []string
}

// Runs is the number of extra runs self-bisection took.
func (o *Origin) Runs() int { return o.LayerRuns + o.PositionRuns }

// RunsText says how many extra runs self-bisection took and where: "2 extra runs (1 over
// layers, 1 over positions)".
func (o *Origin) RunsText() string {
	noun := "runs"
	if o.Runs() == 1 {
		noun = "run"
	}
	return fmt.Sprintf("%d extra %s (%d over layers, %d over positions)", o.Runs(), noun, o.LayerRuns, o.PositionRuns)
}

func (o *Origin) String() string {
	return fmt.Sprintf("pos=%d layer=%d tensor=%s category=%s", o.Pos, o.Layer, o.Stage, o.Category)
}

// prober re-runs one prompt with other plans and compares with a matching baseline.
type prober interface {
	// probe traces plan on the backend under test (with its faults) and on the baseline, and
	// compares the records keep selects. It returns the first divergence, or nil. run says
	// what the run is for (kind, layers, positions); isolate sets its Step once the result
	// is known, so a prober that keeps run sees the finding too.
	probe(run *golden.ExtraRun, plan trace.Plan, keep func(golden.Record) bool) (*golden.Failure, error)
}

// isolate finds the origin of first, the first divergence of a run of plan on a model of
// nLayer layers and a prompt of nPrompt tokens.
//
// The origin is the first divergent record, in causal order, of a full trace of positions up
// to first's: at the earliest divergent position nothing else has diverged yet, so the first
// divergent (layer, stage) there is where the error entered. Three kinds of re-runs get there
// without tracing everything:
//
//  1. Layers: the untraced layers between the last traced layer before first's layer and
//     first's layer are traced by halves (a divergence in a layer propagates up the residual
//     stream, so "layer m diverges" is monotone in m) until the first failing layer's
//     predecessor is known clean.
//  2. Positions: when the isolated layer first fails in its first position-mixing stage
//     (attn_ctx) while q, k and v are clean, the error came from an earlier position's keys
//     or values; when the position before the failing one is untraced, the error may have
//     started there. Either way every position up to first's is traced in that layer.
//  3. Column: when the first divergent record of a layer is its residual input at a position
//     whose previous layer was never compared, the error entered below at that position;
//     every layer is traced at that one position.
func isolate(pr prober, plan trace.Plan, first *golden.Failure, nLayer, nPrompt int) (*golden.Failure, *Origin, error) {
	o := &Origin{}
	cur := first
	traced := plan.Resolve(nLayer, nPrompt)
	cleanLayers := map[int]bool{-1: traced.WantAny(golden.EmbedOut, -1)}
	for _, l := range traced.Layers() {
		cleanLayers[l] = true
	}
	plannedPos := map[int]bool{}
	for _, p := range traced.Positions() {
		plannedPos[p] = true
	}

	// 1. Layers.
	l := cur.Layer
	if l > 0 {
		lo := -1
		for _, t := range traced.Layers() {
			if t < l {
				lo = t
			}
		}
		hi, firstHi := l, cur
		for hi-lo > 1 {
			m := lo + (hi-lo)/2
			p := plan
			p.Layers, p.AllLayers = []int{m}, false
			run := &golden.ExtraRun{Kind: golden.RunLayers, Layers: []int{m}, Positions: "planned"}
			d, err := pr.probe(run, p, func(r golden.Record) bool { return r.Layer == m })
			if err != nil {
				return nil, nil, fmt.Errorf("tracing layer %d: %w", m, err)
			}
			o.LayerRuns++
			if d != nil {
				hi, firstHi = m, d
				run.Step = fmt.Sprintf("layer %d traced: diverges first at %s pos=%d", m, stageOf(d), d.PosID)
			} else {
				lo = m
				cleanLayers[m] = true
				run.Step = fmt.Sprintf("layer %d traced: clean", m)
			}
			o.Steps = append(o.Steps, run.Step)
		}
		cur = firstHi
	}

	// 2. Positions (logits are row-local and computed only for planned rows: nothing to find).
	if cur.PosID > 0 && stageOf(cur) != golden.Logits && (stageOf(cur) == firstMixingStage(traced) || !plannedPos[cur.PosID-1]) {
		l, p := cur.Layer, cur.PosID
		q := plan
		q.Layers, q.AllLayers, q.AllPositions = []int{max(l, 0)}, false, true
		run := &golden.ExtraRun{Kind: golden.RunPositions, Layers: []int{l}, Positions: fmt.Sprintf("0..%d", p)}
		d, err := pr.probe(run, q, func(r golden.Record) bool { return r.Layer == l && r.PosID <= p })
		if err != nil {
			return nil, nil, fmt.Errorf("tracing every position of layer %d: %w", l, err)
		}
		o.PositionRuns++
		run.Step = fmt.Sprintf("layer %d at every position up to %d: clean", l, p)
		if d != nil {
			cur = d
			run.Step = fmt.Sprintf("layer %d at every position up to %d: diverges first at %s pos=%d", l, p, stageOf(d), d.PosID)
		}
		o.Steps = append(o.Steps, run.Step)
	}

	// 3. Column.
	if stageOf(cur) == golden.ResidualPreAttn && !(cleanLayers[cur.Layer-1] && plannedPos[cur.PosID]) {
		p := cur.PosID
		q := plan
		q.AllLayers, q.AllPositions, q.Last, q.Windows = true, false, false, false
		q.Positions = []int{p}
		q.Prefill = p < nPrompt
		q.Decode = p >= nPrompt
		all := make([]int, nLayer)
		for i := range all {
			all[i] = i
		}
		run := &golden.ExtraRun{Kind: golden.RunColumn, Layers: all, Positions: fmt.Sprint(p)}
		d, err := pr.probe(run, q, func(r golden.Record) bool { return r.PosID == p })
		if err != nil {
			return nil, nil, fmt.Errorf("tracing every layer at position %d: %w", p, err)
		}
		o.PositionRuns++
		run.Step = fmt.Sprintf("every layer at position %d: clean", p)
		if d != nil {
			cur = d
			run.Step = fmt.Sprintf("every layer at position %d: diverges first at layer %d %s", p, d.Layer, stageOf(d))
		}
		o.Steps = append(o.Steps, run.Step)
	}

	o.Stage, o.Layer, o.Pos = stageOf(cur), cur.Layer, cur.PosID
	o.Category = cur.Category
	return cur, o, nil
}

// firstMixingStage is the first traced stage whose row depends on other positions: the
// attention context (or, when it is not traced, the first traced stage after it).
func firstMixingStage(sel *engine.Selection) golden.Stage {
	for _, st := range sel.Stages() {
		if st >= golden.AttnCtx && st != golden.Logits {
			return st
		}
	}
	return golden.NumStages // none: never equal to a record's stage
}

// maxLayerRuns is the bound on layer runs for a gap of untraced layers.
func maxLayerRuns(gap int) int {
	if gap <= 0 {
		return 0
	}
	return int(math.Ceil(math.Log2(float64(gap)))) + 1
}
