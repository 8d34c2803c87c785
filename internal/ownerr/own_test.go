package ownerr_test

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// allLayers is the default plan over every layer, with the generated tokens.
func allLayers() trace.Plan {
	p := trace.DefaultPlan()
	p.AllLayers = true
	return p
}

// TestOwnOfReferenceIsExact replays the reference on its own rows: every selected row of
// every layer, embed_out and logits included, must have an own error of exactly zero, on
// both routes, over a prompt longer than one chunk with generated tokens after it. The
// replay's calls follow the run (the prompt in one call or one by one, then each generated
// position): any other split would still give zero on the CPU, but the count of records
// checks that every position was replayed and compared.
func TestOwnOfReferenceIsExact(t *testing.T) {
	m := tiny(t)
	c := m.Config
	p := prompts.Prompt{ID: "random70", Tokens: randomTokens(70, c.Vocab)}
	plan := allLayers()
	plan.AllPositions = true
	if testing.Short() {
		plan.AllLayers, plan.Layers = false, []int{0, c.NLayer - 1}
	}
	for _, route := range []string{golden.RoutePrefill, golden.RouteDecode} {
		t.Run(route, func(t *testing.T) {
			sel := plan.Resolve(c.NLayer, len(p.Tokens))
			rows := ownerr.NewRows()
			_, err := driver.Run(openRef(t, m, false), m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan,
				Route: route, Keep: ownerr.KeepForReplay(rows, sel, c.NLayer)})
			if err != nil {
				t.Fatal(err)
			}
			run := ownerr.Run{Config: c, Rows: rows, Prompt: len(p.Tokens), Route: route}
			recs, err := ownerr.Own(openRef(t, m, false), run, sel, ownerr.Options{Candidate: rows})
			if err != nil {
				t.Fatal(err)
			}
			positions := len(p.Tokens) + plan.MaxNewTokens
			if want := positions * ((golden.NumStages-2)*len(sel.Layers()) + 2); len(recs) != want {
				t.Fatalf("%d records, want %d", len(recs), want)
			}
			for _, r := range recs {
				if !r.Known() || r.Own.RelL2 != 0 || r.Own.MAE != 0 || r.Total == nil || r.Total.RelL2 != 0 {
					t.Fatalf("%v: own %+v total %+v missing %q, want exactly zero", r.Key, r.Own, r.Total, r.Missing)
				}
			}
			checkCausal(t, recs, len(p.Tokens))
		})
	}
}

// checkCausal fails unless recs are in golden's causal order for a prompt of n tokens.
func checkCausal(t *testing.T, recs []ownerr.Record, n int) {
	t.Helper()
	order := golden.CausalOrder(n)
	if !slices.IsSortedFunc(recs, func(a, b ownerr.Record) int { return order(a.GoldenKey(""), b.GoldenKey("")) }) {
		t.Error("records are not in causal order")
	}
}

func randomTokens(n, vocab int) []int32 {
	t := make([]int32, n)
	x := uint32(12345)
	t[0] = 1
	for i := 1; i < n; i++ {
		x = x*1664525 + 1013904223
		t[i] = int32(x>>8) % int32(vocab)
	}
	return t
}

// cleanCandidate is the float64 candidate's clean own errors on one standard prompt, every
// layer, with the reference's run they were replayed on.
type cleanCandidate struct {
	p    prompts.Prompt
	sel  *engine.Selection
	ref  ownerr.Run
	recs []ownerr.Record
}

var cleanRuns = struct {
	sync.Mutex
	m map[string]*cleanCandidate
}{m: map[string]*cleanCandidate{}}

// newCleanCandidate returns the clean run of prompt id, computed once per test binary.
func newCleanCandidate(t *testing.T, id string) *cleanCandidate {
	t.Helper()
	cleanRuns.Lock()
	defer cleanRuns.Unlock()
	if cc := cleanRuns.m[id]; cc != nil {
		return cc
	}
	m := tiny(t)
	p := standard(t, m, id)
	plan := allLayers()
	sel := plan.Resolve(m.Config.NLayer, len(p.Tokens))
	refRun, _ := runKeeping(t, openRef(t, m, false), m, p, plan, sel, ownerr.KeepForReplay)
	cand := openRef(t, m, true)
	candRun, _ := runKeeping(t, cand, m, p, plan, sel, ownerr.KeepRows)
	recs, err := ownerr.Own(cand, refRun, sel, ownerr.Options{Candidate: candRun.Rows})
	if err != nil {
		t.Fatal(err)
	}
	cleanRuns.m[id] = &cleanCandidate{p: p, sel: sel, ref: refRun, recs: recs}
	return cleanRuns.m[id]
}

// TestOwnOfCandidate: the float64 candidate is correct, so its own error is rounding
// noise: never zero everywhere, always within the default floor by a wide margin (the
// floor is meant for devices that round worse), and within Factor x the floors calibrated
// on the other prompts.
func TestOwnOfCandidate(t *testing.T) {
	m := tiny(t)
	c := m.Config
	ids := []string{prompts.P0Short, prompts.P6Len16}
	if testing.Short() {
		ids = ids[:1]
	}
	runs := map[string][]ownerr.Record{}
	for _, id := range ids {
		cc := newCleanCandidate(t, id)
		runs[id] = cc.recs
		nonzero := 0
		for _, r := range cc.recs {
			if !r.Known() {
				t.Fatalf("%s %v: own error unknown: %s", id, r.Key, r.Missing)
			}
			if r.Own.RelL2 > 0 {
				nonzero++
			}
			if fl := ownerr.DefaultFloor(c, r.Stage, r.Pos); r.Own.RelL2 > fl/2 {
				t.Errorf("%s %v: own error %.3g above half the default floor %.3g", id, r.Key, r.Own.RelL2, fl)
			}
		}
		if nonzero < len(cc.recs)/2 {
			t.Errorf("%s: %d of %d own errors are not zero: the candidate rounds like the reference", id, nonzero, len(cc.recs))
		}
		var defaults *ownerr.Floors
		t.Logf("%s against the default floors:\n%s", id, ownerr.FormatMargins(defaults.Margins(c, cc.recs)))
	}
	if len(ids) < 2 {
		return
	}
	held := ownerr.Calibrate(ownerr.MethodReplay, runs[ids[1]])
	for _, mg := range held.Margins(c, runs[ids[0]]) {
		if mg.Ratio > ownerr.Factor/2 {
			t.Errorf("%s: %v of %s is %.3g x the floor calibrated on %s", mg.Stage, mg.Worst.Key, ids[0], mg.Ratio, ids[1])
		}
	}
}

// fault plants x -> x*scale + add at one (stage, layer) from position pos on.
func fault(st golden.Stage, layer, pos int, scale, add float32) engine.Fault {
	return engine.Fault{Stage: st, Layer: layer, PosMin: pos, PosMax: -1, Scale: scale, Add: add}
}

// rms is the root mean square of the reference's row at k.
func rms(t *testing.T, rows *ownerr.Rows, k ownerr.Key) float32 {
	t.Helper()
	row := rows.Row(k)
	if row == nil {
		t.Fatalf("no reference row %v", k)
	}
	var s float64
	for _, x := range row {
		s += float64(x) * float64(x)
	}
	return float32(math.Sqrt(s / float64(len(row))))
}

// TestFaultsStandOut plants faults of relative size 1e-4 in the float64 candidate (a
// scale of 1.0001, or 1e-4 of the row's RMS added) at every stage, at traced and untraced
// layers and at early, 826 and decode positions of p6_len_16 (-short: positions of
// p0_short). Against the floors calibrated on the clean candidate, the first own error over
// Factor x its floor must be exactly the planted (stage, layer, position).
//
// A replay of one layer starts from the reference's rows whatever the other layers did, so
// the records of the layers without the fault are the clean ones: each case replays only
// the faulted layer (logits: the final norm and output projection; embed_out: the
// candidate's own run) and takes the other layers' records from the clean replay.
func TestFaultsStandOut(t *testing.T) {
	m := tiny(t)
	c := m.Config
	id, early, late, decode := prompts.P6Len16, 5, 826, 829
	if testing.Short() {
		id, early, late, decode = prompts.P0Short, 1, 4, 7
	}
	clean := newCleanCandidate(t, id)
	floors := ownerr.Calibrate(ownerr.MethodReplay, clean.recs)
	if over := floors.FirstOver(c, clean.recs, ownerr.Factor); over != nil {
		t.Fatalf("clean run: %v over its floor", over.Key)
	}
	cand := openRef(t, m, true)
	stages := golden.Stages()
	cases := 0
	for i, info := range stages {
		st := info.Stage
		layer := []int{0, 3, 8, 9, 1, 4}[i%6] // traced (0, 1, 4, 8) and untraced (3, 9)
		pos := []int{early, late, decode}[i%3]
		if !info.PerLayer {
			layer = golden.LayerOf(st, 0, c.NLayer)
		}
		for _, kind := range []string{"scale", "add"} {
			want := ownerr.Key{Stage: st, Layer: layer, Pos: pos}
			f := fault(st, layer, pos, 1.0001, 0)
			if kind == "add" {
				f = fault(st, layer, pos, 1, 1e-4*rms(t, clean.ref.Rows, want))
			}
			t.Run(fmt.Sprintf("%s/%s/L%d/pos%d", st, kind, layer, pos), func(t *testing.T) {
				recs := faultyOwn(t, cand, clean, f)
				got := floors.FirstOver(c, recs, ownerr.Factor)
				if got == nil || got.Key != want {
					t.Fatalf("FIRST_FAIL %v, want %v", keyOf(got), want)
				}
				ratio := got.Own.RelL2 / floors.Floor(c, got.Key)
				if ratio < 4*ownerr.Factor {
					t.Errorf("%v: own error %.3g only %.3g x its floor", want, got.Own.RelL2, ratio)
				}
				t.Logf("%v: own error %.3g, %.0f x its floor", want, got.Own.RelL2, ratio)
			})
			cases++
		}
	}
	if cases < 2*golden.NumStages {
		t.Errorf("%d cases", cases)
	}
}

func keyOf(r *ownerr.Record) string {
	if r == nil {
		return "none"
	}
	return r.Key.String()
}

// faultyOwn is the candidate's own errors with fault f planted: the clean records of the
// layers f does not touch, and the faulted layer (or embed_out) computed again.
func faultyOwn(t *testing.T, cand *ref.Engine, clean *cleanCandidate, f engine.Fault) []ownerr.Record {
	t.Helper()
	m := tiny(t)
	c := m.Config
	layer := golden.LayerOf(f.Stage, f.Layer, c.NLayer)
	var redone []ownerr.Record
	var err error
	switch f.Stage {
	case golden.EmbedOut:
		// embed_out reads only its token: the candidate runs the prompt up to the fault,
		// and the later positions' records stay unknown.
		prefix := prompts.Prompt{ID: clean.p.ID, Tokens: clean.p.Tokens[:f.PosMin+1]}
		plan := allLayers()
		plan.MaxNewTokens = 0
		candRun, _ := runKeeping(t, cand, m, prefix, plan, clean.sel, ownerr.KeepRows, f)
		sel := engine.NewSelection([]golden.Stage{golden.EmbedOut}, nil, c.NLayer, clean.sel.Positions(), clean.ref.Prompt+5)
		redone, err = ownerr.Own(cand, clean.ref, sel, ownerr.Options{Candidate: candRun.Rows})
	default:
		redone, err = ownerr.Replay(cand, clean.ref, layer, layer, clean.sel, ownerr.Options{Faults: []engine.Fault{f}})
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []ownerr.Record
	for _, r := range clean.recs {
		if r.Layer != layer {
			out = append(out, r)
		}
	}
	out = append(out, redone...)
	order := golden.CausalOrder(clean.ref.Prompt)
	slices.SortStableFunc(out, func(a, b ownerr.Record) int { return order(a.GoldenKey(""), b.GoldenKey("")) })
	return out
}

// TestToleranceMissesWhatOwnErrorFinds: the faults TestFaultsStandOut localises are below
// what the tolerance policy (rel_l2 1e-3 end to end) can see: the candidate's own run with
// the fault passes it.
func TestToleranceMissesWhatOwnErrorFinds(t *testing.T) {
	plan := allLayers()
	m, p, sel := onShort(t, plan)
	c := m.Config
	_, base := runKeeping(t, openRef(t, m, false), m, p, plan, sel, ownerr.KeepRows)
	for _, f := range []engine.Fault{
		fault(golden.AttnIn, 1, 2, 1.0001, 0),
		fault(golden.AttnCtx, 3, 3, 1.0001, 0),
		fault(golden.MLPOut, 8, 4, 1.0001, 0),
		fault(golden.Logits, c.NLayer, 4, 1.0001, 0),
	} {
		_, recs := runKeeping(t, openRef(t, m, true), m, p, plan, sel, ownerr.KeepRows, f)
		rep, err := golden.CompareRecords(recs, base, golden.Tolerance)
		if err != nil {
			t.Fatal(err)
		}
		if pr := rep.Prompts[0]; pr.Compared != len(base) || pr.FirstFail != nil {
			t.Errorf("%v: tolerance compared %d of %d records, FIRST_FAIL %+v: want all compared and none failing",
				f, pr.Compared, len(base), pr.FirstFail)
		}
	}
}

func TestOwnRefusesMissingReferenceRows(t *testing.T) {
	plan := allLayers()
	m, p, sel := onShort(t, plan)
	c := m.Config
	sel = engine.NewSelection(sel.Stages(), sel.Layers(), c.NLayer, []int{3, 4}, len(p.Tokens))
	refRun, _ := runKeeping(t, openRef(t, m, false), m, p, plan, sel, ownerr.KeepRows) // no replay inputs at 0..2
	_, err := ownerr.Own(openRef(t, m, true), refRun, sel, ownerr.Options{})
	if err == nil || !strings.Contains(err.Error(), "the reference's residual_pre_attn layer 0 pos 0 is missing (keep it with KeepForReplay)") {
		t.Fatalf("Own without replay inputs: %v", err)
	}
}
