package golden

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestClassify(t *testing.T) {
	// The category table of ARCHITECTURE.md section 4, written out independently of
	// stage.go, plus the two extension stages.
	tests := []struct {
		name string
		want Category
	}{
		{"embed_out", "ROUTING/SELECTION"},
		{"residual_pre_attn", "ROUTING/SELECTION"},
		{"attn_in", "ATTN_KERNEL_INPUTS"},
		{"q_pre_rope", "ATTN_KERNEL_INPUTS"},
		{"k_pre_rope", "ATTN_KERNEL_INPUTS"},
		{"v", "ATTN_KERNEL_INPUTS"},
		{"q_post_rope", "ATTENTION_MECHANISM"},
		{"k_post_rope", "ATTENTION_MECHANISM"},
		{"attn_ctx", "ATTENTION_MECHANISM"},
		{"attn_out", "ATTENTION_MECHANISM"},
		{"residual_post_attn", "RESIDUAL_ADD"},
		{"ffn_norm_in", "FFN_NORM_PATH"},
		{"mlp_out", "MLP_OUTPUT"},
		{"residual_post_mlp", "RESIDUAL_ADD"},
		{"logits", "UNKNOWN"},
		{"attn_norm", "UNKNOWN"},
		{"", "UNKNOWN"},
		{"EMBED_OUT", "UNKNOWN"},
	}
	for _, tc := range tests {
		if got := Classify(tc.name); got != tc.want {
			t.Errorf("Classify(%q) = %s, want %s", tc.name, got, tc.want)
		}
	}
	if len(tests)-3 != NumStages {
		t.Errorf("the test covers %d stages, the table has %d", len(tests)-3, NumStages)
	}
}

func TestCausalOrder(t *testing.T) {
	want := []Key{
		{"p", 1, -1, "embed_out"},
		{"p", 5, -1, "embed_out"},
		{"p", 0, 0, "residual_pre_attn"},
		{"p", 826, 0, "residual_pre_attn"},
		{"p", 3, 0, "attn_in"},
		{"p", 3, 0, "v"},
		{"p", 3, 0, "attn_ctx"},
		{"p", 3, 0, "attn_out"},
		{"p", 3, 0, "residual_post_mlp"},
		{"p", 900, 2, "residual_pre_attn"}, // layers compare as numbers: 2 before 10
		{"p", 0, 10, "residual_pre_attn"},
		{"p", 10, 10, "mlp_out"},
		{"p", 0, 22, "logits"},
		{"p", 4, 22, "logits"},
		{"p", 0, 0, "custom_a"},
		{"p", 0, 1, "custom_a"},
		{"p", 0, 0, "custom_b"},
	}
	for seed := uint64(0); seed < 20; seed++ {
		got := slices.Clone(want)
		rand.New(rand.NewPCG(seed, 1)).Shuffle(len(got), func(i, j int) { got[i], got[j] = got[j], got[i] })
		slices.SortFunc(got, CausalCompare)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("causal order (-want +got):\n%s", diff)
		}
	}
}

// row returns a deterministic row of n values of magnitude about scale.
func row(seed uint64, n int, scale float64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 99))
	r := make([]float32, n)
	for i := range r {
		r[i] = float32((2*rng.Float64() - 1) * scale)
	}
	return r
}

// scaled returns y*(1+rel*u) with u uniform in [-1.7, 1.7): a relative error of about rel.
func scaled(y []float32, rel float64, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 7))
	x := make([]float32, len(y))
	for i := range y {
		x[i] = float32(float64(y[i]) * (1 + rel*1.7*(2*rng.Float64()-1)))
	}
	return x
}

// rec builds a traced record of row with hash, nz_count and (when sketch) a sketch.
func rec(prompt string, pos, layer int, tensor string, r []float32, sketch bool) Record {
	out := Record{PromptID: prompt, TokenID: 100 + pos, PosID: pos, Layer: layer, TensorName: tensor, Hash: HashRow(r), NZCount: NonZero(r)}
	if sketch {
		out.Sketch = NewSketch(r)
	}
	return out
}

func TestPolicies(t *testing.T) {
	y := row(1, 512, 3)
	outlier := slices.Clone(y)
	outlier[0] = 1e4 // one huge channel: rel_l2 hides an error spread over the others
	spread := slices.Clone(outlier)
	for i := 1; i < len(spread); i++ {
		spread[i] += 0.1
	}
	nan := slices.Clone(y)
	nan[3] = float32(math.NaN())
	tests := []struct {
		name       string
		cand, base Record
		policy     Policy
		wantReason string // "" passes
		wantSized  bool
	}{
		{"identical, exact", rec("p", 0, 0, "attn_in", y, true), rec("p", 0, 0, "attn_in", y, true), Exact, "", true},
		{"identical, tolerance", rec("p", 0, 0, "attn_in", y, true), rec("p", 0, 0, "attn_in", y, true), Tolerance, "", true},
		{"rounding noise, exact", rec("p", 0, 0, "attn_in", scaled(y, 1e-6, 2), true), rec("p", 0, 0, "attn_in", y, true), Exact, ReasonHash, true},
		{"rounding noise, tolerance", rec("p", 0, 0, "attn_in", scaled(y, 1e-6, 2), true), rec("p", 0, 0, "attn_in", y, true), Tolerance, "", true},
		{"1% error, tolerance", rec("p", 0, 0, "attn_in", scaled(y, 1e-2, 3), true), rec("p", 0, 0, "attn_in", y, true), Tolerance, ReasonTolerance, true},
		{"1% error, tolerance-f16", rec("p", 0, 0, "attn_in", scaled(y, 1e-2, 3), true), rec("p", 0, 0, "attn_in", y, true), ToleranceF16, "", true},
		{"1% error, stage threshold raised", rec("p", 0, 0, "attn_in", scaled(y, 1e-2, 3), true), rec("p", 0, 0, "attn_in", y, true),
			Tolerance.WithThreshold(AttnIn, Threshold{RelL2: 0.1, MAE: 1}), "", true},
		{"1% error, another stage's threshold raised", rec("p", 0, 0, "attn_in", scaled(y, 1e-2, 3), true), rec("p", 0, 0, "attn_in", y, true),
			Tolerance.WithThreshold(AttnOut, Threshold{RelL2: 0.1, MAE: 1}), ReasonTolerance, true},
		{"spread error under an outlier: MAE fires", rec("p", 0, 0, "mlp_out", spread, true), rec("p", 0, 0, "mlp_out", outlier, true), Tolerance, ReasonTolerance, true},
		{"NaN fails tolerance", rec("p", 0, 0, "attn_in", nan, true), rec("p", 0, 0, "attn_in", y, true), Tolerance, ReasonTolerance, true},
		{"same hash, other nz_count", func() Record { r := rec("p", 0, 0, "v", y, true); r.NZCount--; return r }(), rec("p", 0, 0, "v", y, true), Exact, ReasonHash, true},
		{"no sketch: tolerance falls back to exact", rec("p", 0, 0, "v", scaled(y, 1e-6, 2), false), rec("p", 0, 0, "v", y, false), Tolerance, ReasonHash, false},
		{"sketch on one side only", rec("p", 0, 0, "v", scaled(y, 1e-6, 2), true), rec("p", 0, 0, "v", y, false), Tolerance, ReasonHash, false},
		{"sketch of another version", func() Record { r := rec("p", 0, 0, "v", scaled(y, 1e-6, 2), true); r.Sketch.Version = 7; return r }(),
			rec("p", 0, 0, "v", y, true), Tolerance, ReasonHash, false},
		{"row lengths differ", rec("p", 0, 0, "v", y[:256], true), rec("p", 0, 0, "v", y, true), Tolerance, ReasonShape, false},
		{"unknown stage uses Other", rec("p", 0, 0, "probe", scaled(y, 1e-6, 2), true), rec("p", 0, 0, "probe", y, true), Tolerance, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := CompareRecords([]Record{tc.cand}, []Record{tc.base}, tc.policy)
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Prompts[0]
			if p.Compared != 1 {
				t.Fatalf("compared %d, want 1", p.Compared)
			}
			var reason string
			var sized bool
			if len(p.Failures) > 0 {
				reason, sized = p.Failures[0].Reason, p.Failures[0].Diff != nil
			}
			if reason != tc.wantReason || (tc.wantReason != "" && sized != tc.wantSized) {
				t.Errorf("reason %q sized %v, want %q sized %v", reason, sized, tc.wantReason, tc.wantSized)
			}
			wantStatus := StatusMatch
			if tc.wantReason != "" {
				wantStatus = StatusDiverged
			}
			if p.Status != wantStatus || rep.OK() != (wantStatus == StatusMatch) {
				t.Errorf("status %s OK %v, want %s", p.Status, rep.OK(), wantStatus)
			}
			wantNotes := 0
			if tc.policy.Tolerance && tc.wantReason == ReasonHash {
				wantNotes = 1
			}
			if len(rep.Notes) != wantNotes {
				t.Errorf("notes %q, want %d", rep.Notes, wantNotes)
			}
		})
	}
}

func TestFirstFailAndMissing(t *testing.T) {
	y := row(2, 256, 1)
	z := scaled(y, 0.3, 4)
	var base, cand []Record
	for _, k := range []Key{
		{"p", 0, -1, "embed_out"}, {"p", 1, -1, "embed_out"},
		{"p", 0, 0, "residual_pre_attn"}, {"p", 1, 0, "residual_pre_attn"},
		{"p", 0, 0, "mlp_out"}, {"p", 1, 0, "mlp_out"},
		{"p", 0, 1, "residual_pre_attn"}, {"p", 1, 1, "residual_pre_attn"},
		{"p", 1, 2, "logits"},
	} {
		base = append(base, rec(k.PromptID, k.PosID, k.Layer, k.TensorName, y, true))
		c := y
		// Layer 0 mlp_out at position 1 diverges first; everything after it follows.
		if CausalCompare(k, Key{"p", 1, 0, "mlp_out"}) >= 0 && k.PosID == 1 {
			c = z
		}
		cand = append(cand, rec(k.PromptID, k.PosID, k.Layer, k.TensorName, c, true))
	}
	cand = slices.DeleteFunc(cand, func(r Record) bool { return KeyOf(r) == Key{"p", 0, 1, "residual_pre_attn"} })
	cand = append(cand, rec("p", 0, 3, "attn_in", y, true))
	rep, err := CompareRecords(cand, base, Exact)
	if err != nil {
		t.Fatal(err)
	}
	p := rep.Prompts[0]
	type row struct {
		Key
		First bool
	}
	var got []row
	for _, f := range p.Failures {
		got = append(got, row{f.Key, f.FirstFail})
	}
	want := []row{
		{Key{"p", 1, 0, "mlp_out"}, true},
		{Key{"p", 1, 1, "residual_pre_attn"}, false},
		{Key{"p", 1, 2, "logits"}, false},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures (-want +got):\n%s", diff)
	}
	if p.FirstFail == nil || p.FirstFail.Key != want[0].Key || p.FirstFail.Category != MLPOutput {
		t.Errorf("FirstFail %+v, want layer 0 mlp_out at 1, MLP_OUTPUT", p.FirstFail)
	}
	if diff := cmp.Diff([]Key{{"p", 0, 1, "residual_pre_attn"}}, p.MissingInCandidate); diff != "" {
		t.Errorf("MissingInCandidate (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]Key{{"p", 0, 3, "attn_in"}}, p.MissingInBaseline); diff != "" {
		t.Errorf("MissingInBaseline (-want +got):\n%s", diff)
	}
	if p.Status != StatusDiverged || p.Compared != 8 || p.Mismatched != 3 || p.Missing() != 2 {
		t.Errorf("status %s compared %d mismatched %d missing %d, want diverged 8 3 2", p.Status, p.Compared, p.Mismatched, p.Missing())
	}
}

func TestMissingOnly(t *testing.T) {
	y := row(3, 256, 1)
	base := []Record{rec("a", 0, 0, "v", y, false), rec("a", 1, 0, "v", y, false), rec("b", 0, 0, "v", y, false)}
	cand := []Record{rec("a", 0, 0, "v", y, false), rec("c", 0, 0, "v", y, false)}
	rep, err := CompareRecords(cand, base, Exact)
	if err != nil {
		t.Fatal(err)
	}
	type summary struct {
		ID                 string
		Status             Status
		Compared, InC, InB int
		FirstFailNil       bool
	}
	var got []summary
	for _, p := range rep.Prompts {
		got = append(got, summary{p.PromptID, p.Status, p.Compared, len(p.MissingInCandidate), len(p.MissingInBaseline), p.FirstFail == nil})
	}
	want := []summary{
		{"a", StatusMissing, 1, 1, 0, true}, // a record of the baseline is absent
		{"b", StatusMissing, 0, 1, 0, true}, // no candidate trace at all
		{"c", StatusMissing, 0, 0, 1, true}, // no baseline trace
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("prompts (-want +got):\n%s", diff)
	}
	if rep.OK() {
		t.Error("OK() with missing records: true")
	}
	if got := rep.Prompts[1].Line(); got != "b: MISSING 1 baseline record absent from the candidate (first pos=0 layer=0 tensor=v)" {
		t.Errorf("Line() = %q", got)
	}
}

func TestTokenMismatch(t *testing.T) {
	y := row(4, 256, 1)
	tests := []struct {
		name       string
		withEmbed  bool
		wantHash   string
		wantPassed int // failing records besides the input divergence
	}{
		{"embed_out traced", true, HashRow(y), 0},
		{"embed_out not traced", false, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var base, cand []Record
			for _, k := range []Key{{"p", 3, -1, "embed_out"}, {"p", 3, 0, "residual_pre_attn"}, {"p", 2, 0, "attn_in"}} {
				if k.TensorName == "embed_out" && !tc.withEmbed {
					continue
				}
				b := rec("p", k.PosID, k.Layer, k.TensorName, y, true)
				c := b
				if k.PosID == 3 {
					c.TokenID = 77 // the candidate read another token; its rows happen to agree
				}
				base, cand = append(base, b), append(cand, c)
			}
			rep, err := CompareRecords(cand, base, Exact)
			if err != nil {
				t.Fatal(err)
			}
			p := rep.Prompts[0]
			if len(p.Failures) != 1 {
				t.Fatalf("%d failures %+v, want the one input divergence", len(p.Failures), p.Failures)
			}
			f := p.Failures[0]
			want := Failure{
				Key: Key{"p", 3, -1, "embed_out"}, Category: RoutingSelection, Reason: ReasonToken,
				TokenID: 77, BaselineTokenID: 103, Hash: tc.wantHash, BaselineHash: tc.wantHash,
				HashMatch: tc.withEmbed, FirstFail: true,
			}
			if tc.withEmbed {
				want.Diff = &Diff{Exact: true}
			}
			if diff := cmp.Diff(want, f); diff != "" {
				t.Errorf("input divergence (-want +got):\n%s", diff)
			}
			if got, wantLine := f.Line(), "p: FIRST_FAIL pos=3 layer=-1 tensor=embed_out category=ROUTING/SELECTION (token_id 77 want 103)"; got != wantLine {
				t.Errorf("Line() = %q, want %q", got, wantLine)
			}
		})
	}
}

func TestCompareErrors(t *testing.T) {
	y := row(5, 256, 1)
	a, b := rec("p", 0, 0, "v", y, false), rec("p", 1, 0, "v", y, false)
	tests := []struct {
		name       string
		cand, base []*Trace
		want       string
	}{
		{"nothing at all", nil, nil, "compared zero records"},
		{"disjoint keys", []*Trace{{PromptID: "p", Records: []Record{a}}}, []*Trace{{PromptID: "p", Records: []Record{b}}},
			"compared zero records: no key of the 1 candidate records matches one of the 1 baseline records"},
		{"no candidate", nil, []*Trace{{PromptID: "p", Records: []Record{a}}}, "compared zero records"},
		{"duplicate key", []*Trace{{PromptID: "p", Records: []Record{a, b, a}}}, []*Trace{{PromptID: "p", Records: []Record{a}}},
			"candidate: trace p (in memory): duplicate key (prompt_id=p pos_id=0 layer=0 tensor_name=v) (records 1 and 3)"},
		{"two traces of a prompt", []*Trace{{PromptID: "p", Path: "x/p_trace.jsonl", Records: []Record{a}}}, []*Trace{{PromptID: "p", Records: []Record{a}}, {PromptID: "p", Records: []Record{b}}},
			`baseline: two traces of prompt "p"`},
		{"stray prompt id", []*Trace{{PromptID: "q", Path: "d/q_trace.jsonl", Records: []Record{a}}}, []*Trace{{PromptID: "p", Records: []Record{a}}},
			`candidate: d/q_trace.jsonl: record 1 has prompt_id "p"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compare(tc.cand, tc.base, Exact)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Compare error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestFailureLine(t *testing.T) {
	f := Failure{
		Key: Key{"p6_len_16", 826, 0, "residual_pre_attn"}, Category: RoutingSelection, Reason: ReasonHash,
		Hash: seedSampleHash, BaselineHash: seedBaselineHash, Diff: &Diff{MAE: 0.142, RelL2: 0.31}, FirstFail: true,
	}
	tests := []struct {
		name string
		edit func(f *Failure)
		want string
	}{
		{"sized", func(*Failure) {}, "p6_len_16: FIRST_FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash 3a7b2c1d.. want 9f00e1aa.., MAE 0.142, rel_l2 0.31)"},
		{"no size", func(f *Failure) { f.Diff = nil }, "p6_len_16: FIRST_FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash 3a7b2c1d.. want 9f00e1aa.., MAE n/a)"},
		{"not first", func(f *Failure) { f.FirstFail = false }, "p6_len_16: FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash 3a7b2c1d.. want 9f00e1aa.., MAE 0.142, rel_l2 0.31)"},
		{"infinite and tiny", func(f *Failure) { f.Diff = &Diff{MAE: 1.234e-7, RelL2: math.Inf(1)} }, "p6_len_16: FIRST_FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash 3a7b2c1d.. want 9f00e1aa.., MAE 1.23e-07, rel_l2 inf)"},
		{"short hashes", func(f *Failure) { f.Hash, f.BaselineHash, f.Diff = "abc", "", nil }, "p6_len_16: FIRST_FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash abc.. want none.., MAE n/a)"},
	}
	for _, tc := range tests {
		g := f
		tc.edit(&g)
		if got := g.Line(); got != tc.want {
			t.Errorf("%s: Line() =\n%q, want\n%q", tc.name, got, tc.want)
		}
	}
}

func TestRawFileMustStayInTheTraceFolder(t *testing.T) {
	y := row(6, 256, 1)
	trace := func(dir string, r Record) *Trace {
		r.RawFile = "../outside.npy"
		return &Trace{PromptID: "p", Path: TracePath(dir, "p"), Records: []Record{r}}
	}
	dir := t.TempDir()
	cand := trace(dir+"/c", rec("p", 0, 0, "v", scaled(y, 0.1, 1), false))
	base := trace(dir+"/b", rec("p", 0, 0, "v", y, false))
	_, err := Compare([]*Trace{cand}, []*Trace{base}, Exact)
	if err == nil || !strings.Contains(err.Error(), `raw_file "../outside.npy" must be a path inside the trace's folder`) {
		t.Errorf("Compare with raw_file ../outside.npy: error %v", err)
	}
}

// A generated token chosen from logits that an earlier fault changed diverges at embed_out,
// which sorts before every layer within a pass; the decode step must still come after the
// prompt's pass, so the fault in the prompt stays FIRST_FAIL.
func TestDecodeStepsFollowThePrompt(t *testing.T) {
	y := row(5, 256, 1)
	var base, cand []Record
	add := func(pos, layer int, tensor, phase string, faulty bool) {
		b := rec("p", pos, layer, tensor, y, true)
		b.Phase = phase
		c := b
		if faulty {
			c = rec("p", pos, layer, tensor, scaled(y, 1e-2, uint64(pos)), true)
			c.Phase = phase
		}
		base, cand = append(base, b), append(cand, c)
	}
	add(3, -1, "embed_out", PhasePrefill, false)
	add(3, 3, "k_post_rope", PhasePrefill, true)
	add(4, 3, "k_post_rope", PhasePrefillLast, true)
	add(4, 10, "logits", PhasePrefillLast, true)
	add(5, -1, "embed_out", PhaseDecode, false)
	add(5, 0, "residual_pre_attn", PhaseDecode, false)
	add(6, -1, "embed_out", PhaseDecode, false)
	cand[4].TokenID = 9 // generated from the changed logits at position 4
	cand[6].TokenID = 8

	rep, err := CompareRecords(cand, base, Exact)
	if err != nil {
		t.Fatal(err)
	}
	var got []Key
	for _, f := range rep.Prompts[0].Failures {
		got = append(got, f.Key)
	}
	want := []Key{
		{"p", 3, 3, "k_post_rope"}, {"p", 4, 3, "k_post_rope"}, {"p", 4, 10, "logits"},
		{"p", 5, -1, "embed_out"}, {"p", 6, -1, "embed_out"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("failures in causal order (-want +got):\n%s", diff)
	}
	if ff := rep.Prompts[0].FirstFail; ff == nil || ff.Key != want[0] {
		t.Errorf("FIRST_FAIL = %+v, want %v", ff, want[0])
	}
	if got, want := DecodeStart(base), 5; got != want {
		t.Errorf("DecodeStart = %d, want %d", got, want)
	}
}
