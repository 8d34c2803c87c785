package ownerr_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// perOpPlan traces layers 0, 2 and 5 at every position (attn_ctx reads the keys and values
// of every earlier position), with generated tokens.
func perOpPlan() trace.Plan {
	return trace.Plan{Layers: []int{0, 2, 5}, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 3}
}

// TestPerOpOfReferenceIsExact recomputes every operation of the reference from its own rows:
// each own error is exactly zero, and every record is known (embed_out from the reference
// rows given as the base).
func TestPerOpOfReferenceIsExact(t *testing.T) {
	m := tiny(t)
	c := m.Config
	p := prompts.Prompt{ID: "random70", Tokens: randomTokens(70, c.Vocab)}
	plan := perOpPlan()
	sel := plan.Resolve(c.NLayer, len(p.Tokens))
	run, _ := runKeeping(t, openRef(t, m, false), m, p, plan, sel, ownerr.KeepForOps)
	recs, err := ownerr.PerOp(openRef(t, m, false), run, run.Rows, sel)
	if err != nil {
		t.Fatal(err)
	}
	if want := (len(p.Tokens) + 3) * ((golden.NumStages-2)*3 + 2); len(recs) != want {
		t.Fatalf("%d records, want %d", len(recs), want)
	}
	for _, r := range recs {
		if !r.Known() || r.Own.RelL2 != 0 || r.Own.MAE != 0 || r.Total == nil || r.Total.RelL2 != 0 {
			t.Fatalf("%v: own %+v total %+v missing %q, want exactly zero", r.Key, r.Own, r.Total, r.Missing)
		}
	}
	checkCausal(t, recs, len(p.Tokens))
}

// TestPerOpLocalisesFaults: the float64 candidate with an error of 1e-4 planted in one
// operation (the attn_in, q_post_rope, attn_ctx and mlp_out, and more), recomputed
// per operation by the reference from the candidate's own rows: the first own error over
// Factor x the floors calibrated on the clean candidate is exactly the planted operation,
// although every later row inherited the error; a clean run flags nothing. Total and
// Inherited add up: the planted operation's error is its own, what follows inherits it.
func TestPerOpLocalisesFaults(t *testing.T) {
	plan := perOpPlan()
	m, p, sel := onShort(t, plan)
	c := m.Config
	base, _ := runKeeping(t, openRef(t, m, false), m, p, plan, sel, ownerr.KeepRows)
	r := openRef(t, m, false)
	perOp := func(faults ...engine.Fault) []ownerr.Record {
		cand, _ := runKeeping(t, openRef(t, m, true), m, p, plan, sel, ownerr.KeepForOps, faults...)
		recs, err := ownerr.PerOp(r, base, cand.Rows, sel)
		if err != nil {
			t.Fatal(err)
		}
		return recs
	}
	clean := perOp()
	floors := ownerr.Calibrate(ownerr.MethodPerOp, clean)
	if over := floors.FirstOver(c, clean, ownerr.Factor); over != nil {
		t.Fatalf("clean run: %v over its floor (own %.3g)", over.Key, over.Own.RelL2)
	}
	faults := []engine.Fault{
		fault(golden.AttnIn, 2, 3, 1.0001, 0),
		fault(golden.QPostRope, 0, 1, 1.0001, 0),
		fault(golden.AttnCtx, 5, 4, 1.0001, 0),
		fault(golden.MLPOut, 2, 6, 1.0001, 0), // a generated position
		fault(golden.KPostRope, 5, 2, 1.0001, 0),
		fault(golden.ResidualPreAttn, 2, 0, 1.0001, 0),
		fault(golden.ResidualPostAttn, 0, 3, 1.0001, 0),
		fault(golden.Logits, c.NLayer, 4, 1.0001, 0),
		fault(golden.EmbedOut, -1, 2, 1.0001, 0),
	}
	if testing.Short() {
		faults = faults[:4] // the four operations
	}
	for _, f := range faults {
		want := ownerr.Key{Stage: f.Stage, Layer: golden.LayerOf(f.Stage, f.Layer, c.NLayer), Pos: f.PosMin}
		t.Run(fmt.Sprintf("%s/L%d/pos%d", f.Stage, want.Layer, f.PosMin), func(t *testing.T) {
			recs := perOp(f)
			got := floors.FirstOver(c, recs, ownerr.Factor)
			if got == nil || got.Key != want {
				t.Fatalf("FIRST_FAIL %v, want %v", keyOf(got), want)
			}
			if got.Own.RelL2 < 0.9e-4 || got.Total == nil || got.Total.RelL2 < 0.9e-4 {
				t.Errorf("%v: own %.3g, total %+v, want both about 1e-4", want, got.Own.RelL2, got.Total)
			}
			if got.Inherited != nil && got.Inherited.RelL2 > 1e-5 && f.Stage != golden.ResidualPreAttn {
				t.Errorf("%v: inherited %.3g: the planted operation's inputs were clean", want, got.Inherited.RelL2)
			}
		})
	}
}

// TestPerOpNamesMissingRows: where the candidate lacks a row, the records that read it are
// unknown and say which row, never guessed; the others are computed.
func TestPerOpNamesMissingRows(t *testing.T) {
	plan := perOpPlan()
	m, p, sel := onShort(t, plan)
	c := m.Config
	cand, _ := runKeeping(t, openRef(t, m, true), m, p, plan, sel, ownerr.KeepForOps)
	// A candidate that traced layer 2 at positions 3 and 4 only.
	partial := ownerr.NewRows()
	for _, st := range golden.Stages() {
		for pos := 3; pos <= 4; pos++ {
			if row := cand.Rows.Row(ownerr.Key{Stage: st.Stage, Layer: 2, Pos: pos}); row != nil {
				partial.Put(st.Stage, 2, pos, row)
			}
		}
	}
	only := engine.NewSelection(sel.Stages(), []int{2}, c.NLayer, []int{3, 4}, len(p.Tokens))
	recs, err := ownerr.PerOp(openRef(t, m, false), ownerr.Run{Config: c}, partial, only)
	if err != nil {
		t.Fatal(err)
	}
	missing := map[string]string{}
	for _, r := range recs {
		if !r.Known() {
			missing[r.Key.String()] = r.Missing
		}
	}
	want := map[string]string{
		"embed_out layer -1 pos 3":        "the candidate's embed_out layer -1 pos 3 (its own error is its end-to-end error)",
		"embed_out layer -1 pos 4":        "the candidate's embed_out layer -1 pos 4 (its own error is its end-to-end error)",
		"residual_pre_attn layer 2 pos 3": "the candidate's residual_post_mlp layer 1 pos 3",
		"residual_pre_attn layer 2 pos 4": "the candidate's residual_post_mlp layer 1 pos 4",
		"attn_ctx layer 2 pos 3":          "the candidate's k_post_rope layer 2 pos 0",
		"attn_ctx layer 2 pos 4":          "the candidate's k_post_rope layer 2 pos 0",
		"logits layer 10 pos 3":           "the candidate's logits layer 10 pos 3",
		"logits layer 10 pos 4":           "the candidate's logits layer 10 pos 4",
	}
	if diff := cmp.Diff(want, missing); diff != "" {
		t.Errorf("unknown records (-want +got):\n%s", diff)
	}
	if known := len(recs) - len(missing); known != 2*(golden.NumStages-4) {
		t.Errorf("%d records known, want %d", known, 2*(golden.NumStages-4))
	}
}

// TestPerOpFromRawTrace: an external engine's rows arrive as .npy files beside its trace
// (raw_file); read back, they give exactly the records the rows in memory give.
func TestPerOpFromRawTrace(t *testing.T) {
	plan := perOpPlan()
	m, p, sel := onShort(t, plan)
	c := m.Config
	dir := t.TempDir()
	f := fault(golden.AttnCtx, 2, 3, 1.0001, 0)
	rows := ownerr.NewRows()
	res, err := driver.Run(openRef(t, m, true), m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan,
		Faults: []engine.Fault{f}, RawDir: dir, Keep: ownerr.KeepRows(rows, sel, c.NLayer)})
	if err != nil {
		t.Fatal(err)
	}
	if err := golden.WriteTrace(golden.TracePath(dir, p.ID), res.Records); err != nil {
		t.Fatal(err)
	}
	tr, err := golden.ReadTrace(golden.TracePath(dir, p.ID))
	if err != nil {
		t.Fatal(err)
	}
	fromFiles, err := ownerr.RowsFromTrace(dir, tr.Records)
	if err != nil {
		t.Fatal(err)
	}
	r := openRef(t, m, false)
	want, err := ownerr.PerOp(r, ownerr.Run{Config: c}, rows, sel)
	if err != nil {
		t.Fatal(err)
	}
	got, err := ownerr.PerOp(r, ownerr.Run{Config: c}, fromFiles, sel)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
		t.Errorf("records from the .npy files differ (-memory +files):\n%s", diff)
	}
	if len(got) == 0 || fromFiles.Len() != rows.Len() {
		t.Errorf("%d records, %d rows from files, %d in memory", len(got), fromFiles.Len(), rows.Len())
	}

	// A file that cannot be read is an error naming the record.
	tr.Records[3].RawFile = "gone.npy"
	_, err = ownerr.RowsFromTrace(dir, tr.Records)
	if err == nil || !strings.Contains(err.Error(), "tensor_name=") || !strings.Contains(err.Error(), "gone.npy") {
		t.Errorf("RowsFromTrace with a missing file: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "bad.npy"), []byte("not npy"), 0o644)
	tr.Records[3].RawFile = "bad.npy"
	if _, err = ownerr.RowsFromTrace(dir, tr.Records); err == nil || !strings.Contains(err.Error(), "bad.npy") {
		t.Errorf("RowsFromTrace with a corrupt file: %v", err)
	}
	tr.Records[3].RawFile = "../outside.npy"
	if _, err = ownerr.RowsFromTrace(dir, tr.Records); err == nil || !strings.Contains(err.Error(), `raw_file "../outside.npy" is not a path inside`) {
		t.Errorf("RowsFromTrace with a path outside the folder: %v", err)
	}
	tr.Records[3].RawFile = tr.Records[4].RawFile // another record's row
	if _, err = ownerr.RowsFromTrace(dir, tr.Records); err == nil || !strings.Contains(err.Error(), "the record says") {
		t.Errorf("RowsFromTrace with a row that is not the record's: %v", err)
	}
}
