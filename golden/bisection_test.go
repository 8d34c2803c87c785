package golden

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// bisectionFixture is a prompt whose divergence starts in an untraced layer: the error
// enters layer 3's attention context at position 2 and spreads to every later stage and
// layer from that position on. The planned trace covers layers 0, 1, 2 and 4 at positions
// 0..4, so its first failure is layer 4's residual input at position 2; an extra run of
// layer 3 finds the origin.
type bisectionFixture struct {
	planCand, planBase   []Record
	extraCand, extraBase []Record
	run                  ExtraRun
}

func newBisectionFixture() bisectionFixture {
	rng := rand.New(rand.NewPCG(3, 4))
	const n, nLayer = 64, 5
	diverges := func(layer int, st Stage, pos int) bool {
		return pos >= 2 && st != EmbedOut && (layer > 3 || layer == 3 && st >= AttnCtx || st == Logits)
	}
	pair := func(layer int, st Stage, pos int) (c, b Record) {
		y := make([]float32, n)
		for i := range y {
			y[i] = float32(2*rng.Float64() - 1)
		}
		x := append([]float32(nil), y...)
		if diverges(layer, st, pos) {
			for i := range x {
				x[i] *= 1.01
			}
		}
		for side, row := range [][]float32{x, y} {
			r := Record{
				PromptID: "p", TokenID: 10 + pos, PosID: pos, LogicalTokIdx: pos, Phase: PhasePrefill,
				Layer: LayerOf(st, layer, nLayer), TensorName: st.String(), Route: RoutePrefill,
				Hash: HashRow(row), NZCount: NonZero(row), Shape: []int{n}, DType: "float32", Sketch: NewSketch(row),
			}
			// As a trace file stores it (sketches keep 48 bits), so reports made from files
			// and from memory agree to the bit.
			js, err := json.Marshal(r)
			if err != nil {
				panic(err)
			}
			var back Record
			if err := json.Unmarshal(js, &back); err != nil {
				panic(err)
			}
			if side == 0 {
				c = back
			} else {
				b = back
			}
		}
		return c, b
	}
	var fx bisectionFixture
	traceLayers := func(layers []int, withGlobal bool, cand, base *[]Record) {
		for pos := 0; pos < 5; pos++ {
			if withGlobal {
				c, b := pair(-1, EmbedOut, pos)
				*cand, *base = append(*cand, c), append(*base, b)
			}
			for _, l := range layers {
				for _, s := range Stages() {
					if s.PerLayer {
						c, b := pair(l, s.Stage, pos)
						*cand, *base = append(*cand, c), append(*base, b)
					}
				}
			}
			if withGlobal {
				c, b := pair(nLayer, Logits, pos)
				*cand, *base = append(*cand, c), append(*base, b)
			}
		}
	}
	traceLayers([]int{0, 1, 2, 4}, true, &fx.planCand, &fx.planBase)
	traceLayers([]int{3}, false, &fx.extraCand, &fx.extraBase)
	fx.run = ExtraRun{Kind: RunLayers, Layers: []int{3}, Positions: "planned", Policy: Exact,
		Step: "layer 3 traced: diverges first at attn_ctx pos=2"}
	return fx
}

func (fx bisectionFixture) report(t *testing.T) *Report {
	t.Helper()
	rep, err := CompareRecords(fx.planCand, fx.planBase, Exact)
	if err != nil {
		t.Fatal(err)
	}
	if err := rep.Prompts[0].Merge(fx.run, &Trace{PromptID: "p", Records: fx.extraCand}, &Trace{PromptID: "p", Records: fx.extraBase}); err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestMergeNamesTheOrigin(t *testing.T) {
	fx := newBisectionFixture()
	rep := fx.report(t)
	p := rep.Prompts[0]
	want := Key{"p", 2, 3, "attn_ctx"}
	if p.FirstFail == nil || p.FirstFail.Key != want || !p.FirstFail.FirstFail {
		t.Fatalf("FirstFail = %+v, want the origin %v", p.FirstFail, want)
	}
	if p.FirstTraced == nil || p.FirstTraced.Key != (Key{"p", 2, 4, "residual_pre_attn"}) || p.FirstTraced.FirstFail {
		t.Errorf("FirstTraced = %+v, want layer 4 residual_pre_attn pos 2, not marked FIRST_FAIL", p.FirstTraced)
	}
	if got := p.Line(); !strings.HasPrefix(got, "p: FIRST_FAIL pos=2 layer=3 tensor=attn_ctx category=ATTENTION_MECHANISM") {
		t.Errorf("Line() = %q", got)
	}
	counts := rep.CategoryCounts()
	for i, c := range Categories {
		want := 0
		if c == AttentionMechanism {
			want = 1
		}
		if counts[i] != want {
			t.Errorf("category %s counted %d, want %d", c, counts[i], want)
		}
	}
	run := p.Extra[0]
	// Layer 3 diverges from attn_ctx on at positions 2..4: 6 stages x 3 positions.
	if run.Compared != 13*5 || run.Mismatched != 6*3 || run.First == nil || run.First.Key != want {
		t.Errorf("extra run: compared %d mismatched %d first %+v, want 65, 18, %v", run.Compared, run.Mismatched, run.First, want)
	}
	if p.Compared != len(fx.planBase)+len(fx.extraBase) || p.Mismatched != len(p.Failures) {
		t.Errorf("Compared %d Mismatched %d, want %d and %d", p.Compared, p.Mismatched, len(fx.planBase)+len(fx.extraBase), len(p.Failures))
	}
	if p.LayerRuns() != 1 || p.PositionRuns() != 0 || p.RunsText() != "1 extra run (1 over layers, 0 over positions)" {
		t.Errorf("runs: %d %d %q", p.LayerRuns(), p.PositionRuns(), p.RunsText())
	}
	// Merging the same run again adds no record twice.
	before := p.Compared
	if err := p.Merge(fx.run, &Trace{PromptID: "p", Records: fx.extraCand}, &Trace{PromptID: "p", Records: fx.extraBase}); err != nil {
		t.Fatal(err)
	}
	if p.Compared != before || p.FirstFail.Key != want {
		t.Errorf("second merge: compared %d -> %d, first %v", before, p.Compared, p.FirstFail.Key)
	}
}

// TestReportsNameTheOrigin checks every format: the origin is first_fail and the only
// category counted; first_traced and the runs are there; the heatmap has a row for layer 3
// with its note and the origin's cell outlined.
func TestReportsNameTheOrigin(t *testing.T) {
	rep := newBisectionFixture().report(t)
	var js bytes.Buffer
	if err := rep.WriteJSON(&js); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Prompts []struct {
			FirstFail struct {
				PosID      int    `json:"pos_id"`
				Layer      int    `json:"layer"`
				TensorName string `json:"tensor_name"`
				Category   string `json:"category"`
			} `json:"first_fail"`
			Traced struct {
				Layer      int    `json:"layer"`
				TensorName string `json:"tensor_name"`
			} `json:"first_traced"`
			Origin struct {
				ExtraRuns int `json:"extra_runs"`
				Runs      []struct {
					Kind   string `json:"kind"`
					Layers []int  `json:"layers"`
					Step   string `json:"step"`
				} `json:"runs"`
			} `json:"origin"`
		} `json:"prompts"`
		Categories map[string]int `json:"categories"`
	}
	if err := json.Unmarshal(js.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	pj := got.Prompts[0]
	if pj.FirstFail.Layer != 3 || pj.FirstFail.TensorName != "attn_ctx" || pj.FirstFail.PosID != 2 || pj.FirstFail.Category != "ATTENTION_MECHANISM" {
		t.Errorf("json first_fail = %+v, want the origin", pj.FirstFail)
	}
	if pj.Traced.Layer != 4 || pj.Traced.TensorName != "residual_pre_attn" {
		t.Errorf("json first_traced = %+v", pj.Traced)
	}
	if pj.Origin.ExtraRuns != 1 || len(pj.Origin.Runs) != 1 || pj.Origin.Runs[0].Kind != RunLayers || !cmp.Equal(pj.Origin.Runs[0].Layers, []int{3}) {
		t.Errorf("json origin = %+v", pj.Origin)
	}
	if got.Categories["ATTENTION_MECHANISM"] != 1 || got.Categories["ROUTING/SELECTION"] != 0 {
		t.Errorf("json categories = %v", got.Categories)
	}

	var md bytes.Buffer
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"| p | 2 | 3 | attn_ctx | NO | ",       // the origin leads the First Failure Table
		"| ATTENTION_MECHANISM | 1 | 100.0% |", // and is what the summary counts
		"| ROUTING/SELECTION | 0 | 0.0% |",     //
		"## Self-bisection of p",               //
		"First failure of the planned trace: p: FAIL pos=2 layer=4 tensor=residual_pre_attn", //
		"| 1 | layers | 3 | planned | exact | 65 | 18 | layer 3 traced: diverges first at attn_ctx pos=2 |",
	} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}

	hm := rep.Prompts[0].heatmap()
	var labels []string
	for _, r := range hm.Rows {
		labels = append(labels, r.Label)
		for _, c := range r.Cells {
			if c.First != (r.Label == "layer 3" && strings.Contains(c.Title, "attn_ctx")) {
				t.Errorf("%s: outlined %v", c.Title, c.First)
			}
			if c.FirstTraced != (r.Label == "layer 4" && strings.Contains(c.Title, "residual_pre_attn")) {
				t.Errorf("%s: marked as the planned trace's first failure %v", c.Title, c.FirstTraced)
			}
		}
		if (r.Note != "") != (r.Label == "layer 3") || r.Label == "layer 3" && r.Note != "run 1: planned positions" {
			t.Errorf("row %s note %q", r.Label, r.Note)
		}
	}
	if want := []string{"embed", "layer 0", "layer 1", "layer 2", "layer 3", "layer 4", "logits"}; !cmp.Equal(labels, want) {
		t.Errorf("heatmap rows %v, want %v", labels, want)
	}
	if len(hm.Gaps) != 0 {
		t.Errorf("gaps %+v: layer 3 was traced by the extra run", hm.Gaps)
	}
}

// TestExtraRunsOnDisk writes the extra run in the artifacts' layout and reads it back into a
// comparison of the planned traces: the report is the one made in memory, byte for byte.
func TestExtraRunsOnDisk(t *testing.T) {
	fx := newBisectionFixture()
	dir := t.TempDir()
	if err := WriteExtraRun(filepath.Join(dir, "extra"), 1, fx.run, fx.extraCand, fx.extraBase); err != nil {
		t.Fatal(err)
	}
	rep, err := CompareRecords(fx.planCand, fx.planBase, Exact)
	if err != nil {
		t.Fatal(err)
	}
	n, err := rep.MergeExtraRuns(filepath.Join(dir, "extra"))
	if err != nil || n != 1 {
		t.Fatalf("MergeExtraRuns = %d, %v", n, err)
	}
	for _, f := range []string{FormatMarkdown, FormatJSON, FormatHTML} {
		var a, b bytes.Buffer
		if err := rep.Write(&a, f); err != nil {
			t.Fatal(err)
		}
		if err := fx.report(t).Write(&b, f); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(b.String(), a.String()); diff != "" {
			t.Errorf("%s report from disk differs (-memory +disk):\n%s", f, diff)
		}
	}
	// A custom tolerance policy survives the round trip.
	pol := Tolerance.WithThreshold(AttnCtx, Threshold{RelL2: 0.5, MAE: 2})
	b, err := json.Marshal(pol)
	if err != nil {
		t.Fatal(err)
	}
	var back Policy
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != pol {
		t.Errorf("policy round trip: %+v, want %+v", back, pol)
	}
	if _, err := rep.MergeExtraRuns(filepath.Join(dir, "nothing")); err == nil {
		t.Error("MergeExtraRuns of a missing folder: no error")
	}
}

// ownFixture is bisectionFixture's prompt judged by own errors: every layer's records have
// an own error at rounding level except layer 3's attention context from position 2 on,
// wrong by 1e-4, which the end-to-end tolerance cannot see.
func ownFixture(t *testing.T) *Report {
	t.Helper()
	fx := newBisectionFixture()
	rep, err := CompareRecords(fx.planCand, fx.planBase, Tolerance)
	if err != nil {
		t.Fatal(err)
	}
	rep.Policy = Replay
	o := &OwnResult{Method: "replay", Floors: "testdata/cpu-f64acc/tiny/noise.json"}
	for l := -1; l <= 5; l++ {
		for _, s := range Stages() {
			if s.PerLayer == (l < 0 || l == 5) || (l == -1) != (s.Stage == EmbedOut) {
				continue
			}
			for pos := 0; pos < 5; pos++ {
				own := 1e-7 * float64(1+int(s.Stage)%3)
				if l == 3 && s.Stage >= AttnCtx && pos >= 2 {
					own = 1e-4
				}
				inh := &Diff{RelL2: 1e-7 * float64(l+1), MAE: 1e-8}
				o.Records = append(o.Records, OwnRecord{Key: Key{"p", pos, l, s.Name},
					Own: OwnError{RelL2: own, MAE: own / 3, Floor: 5e-7, Factor: 4, Inherited: inh, Total: &Diff{RelL2: own + inh.RelL2, MAE: 1e-8}}})
			}
		}
	}
	if note := rep.Prompts[0].SetOwn(o); note != "" {
		t.Errorf("note %q: no end-to-end failure was expected", note)
	}
	return rep
}

func TestSetOwnNamesTheFirstOwnError(t *testing.T) {
	rep := ownFixture(t)
	p := rep.Prompts[0]
	if p.Status != StatusDiverged || p.FirstFail == nil || p.FirstFail.Key != (Key{"p", 2, 3, "attn_ctx"}) || p.FirstFail.Reason != ReasonOwn {
		t.Fatalf("status %s, first %+v", p.Status, p.FirstFail)
	}
	// Layer 3: attn_ctx, attn_out, the residuals, ffn_norm_in and mlp_out at positions 2..4.
	if p.Mismatched != 6*3 {
		t.Errorf("%d failures, want 18", p.Mismatched)
	}
	want := "p: FIRST_FAIL pos=2 layer=3 tensor=attn_ctx category=ATTENTION_MECHANISM (end to end MAE 1e-08, rel_l2 0.0001, own rel_l2 0.0001 (floor 5e-07))"
	if got := p.Line(); got != want {
		t.Errorf("Line() = %q, want %q", got, want)
	}
	layers := p.Own.Layers()
	if len(layers) != 7 || layers[4].Layer != 3 || layers[4].Over != 18 || layers[4].Own.TensorName != "attn_ctx" {
		t.Errorf("layers %+v", layers)
	}
	// A clean run whose end-to-end errors exceed the tolerance says why it is clean.
	fx := newBisectionFixture()
	clean, err := CompareRecords(fx.planCand, fx.planBase, Tolerance)
	if err != nil {
		t.Fatal(err)
	}
	note := clean.Prompts[0].SetOwn(&OwnResult{Method: "replay", Floors: "defaults"})
	if clean.Prompts[0].Status != StatusMatch || !strings.Contains(note, "drift accumulated from rounding") {
		t.Errorf("clean own errors: status %s, note %q", clean.Prompts[0].Status, note)
	}
}
