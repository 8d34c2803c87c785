package ownerr_test

import (
	"bytes"
	"errors"
	"io/fs"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
)

var smallConfig = model.Config{NLayer: 2, Dim: 64, FFNDim: 160, NHead: 4, NHeadKV: 2, HeadDim: 16, Vocab: 50}

// TestReductionLength pins K by hand for dim 64, ffn 160, 4 heads of 16.
func TestReductionLength(t *testing.T) {
	c := smallConfig
	tests := []struct {
		st   golden.Stage
		pos  int
		want int
	}{
		{golden.EmbedOut, 0, 1},
		{golden.ResidualPreAttn, 9, 1},
		{golden.AttnIn, 0, 64},
		{golden.QPreRope, 0, 128},
		{golden.V, 0, 128},
		{golden.KPostRope, 0, 130},
		{golden.AttnCtx, 0, 130 + 16 + 2},
		{golden.AttnCtx, 99, 130 + 16 + 200},
		{golden.AttnOut, 0, 148 + 64},
		{golden.ResidualPostAttn, 0, 213},
		{golden.FFNNormIn, 0, 277},
		{golden.MLPOut, 0, 277 + 128 + 160},
		{golden.ResidualPostMLP, 0, 566},
		{golden.Logits, 5, 128},
	}
	for _, tc := range tests {
		if got := ownerr.ReductionLength(c, tc.st, tc.pos); got != tc.want {
			t.Errorf("K(%s, pos %d) = %d, want %d", tc.st, tc.pos, got, tc.want)
		}
	}
	if got, want := ownerr.DefaultFloor(c, golden.AttnIn, 0), ownerr.DefaultC*ownerr.Unit*8; got != want {
		t.Errorf("DefaultFloor(attn_in) = %g, want %g", got, want)
	}
}

func rec(st golden.Stage, layer, pos int, relL2, mae float64) ownerr.Record {
	return ownerr.Record{Key: ownerr.Key{Stage: st, Layer: layer, Pos: pos}, Own: golden.Diff{RelL2: relL2, MAE: mae, Exact: true}}
}

// TestCalibrateAndLookUp: the floor of a (stage, layer) is its worst own error over every
// run; a layer without one takes its stage's largest; a stage without any the default; none
// is below Unit. Unknown records count for nothing.
func TestCalibrateAndLookUp(t *testing.T) {
	c := smallConfig
	unknown := rec(golden.AttnIn, 0, 9, 1, 1)
	unknown.Missing = "the candidate's attn_in layer 0 pos 9"
	f := ownerr.Calibrate(ownerr.MethodReplay,
		[]ownerr.Record{rec(golden.AttnIn, 0, 1, 2e-7, 1e-8), rec(golden.AttnIn, 1, 1, 5e-7, 3e-8), unknown},
		[]ownerr.Record{rec(golden.AttnIn, 0, 4, 3e-7, 2e-8), rec(golden.ResidualPreAttn, 1, 4, 0, 0)})
	want := []ownerr.Floor{
		{Stage: golden.AttnIn, Layer: 0, RelL2: 3e-7, MAE: 2e-8, N: 2},
		{Stage: golden.ResidualPreAttn, Layer: 1, RelL2: 0, MAE: 0, N: 1},
		{Stage: golden.AttnIn, Layer: 1, RelL2: 5e-7, MAE: 3e-8, N: 1},
	}
	if diff := cmp.Diff(want, f.Floors); diff != "" {
		t.Errorf("floors (-want +got):\n%s", diff)
	}
	var none *ownerr.Floors
	for _, tc := range []struct {
		f    *ownerr.Floors
		k    ownerr.Key
		want float64
	}{
		{f, ownerr.Key{Stage: golden.AttnIn, Layer: 0, Pos: 7}, 3e-7},
		{f, ownerr.Key{Stage: golden.AttnIn, Layer: 5, Pos: 7}, 5e-7},
		{f, ownerr.Key{Stage: golden.ResidualPreAttn, Layer: 1}, ownerr.Unit},
		{f, ownerr.Key{Stage: golden.MLPOut, Layer: 0}, ownerr.DefaultFloor(c, golden.MLPOut, 0)},
		{none, ownerr.Key{Stage: golden.AttnCtx, Layer: 0, Pos: 50}, ownerr.DefaultFloor(c, golden.AttnCtx, 50)},
	} {
		if got := tc.f.Floor(c, tc.k); got != tc.want {
			t.Errorf("Floor(%v) = %g, want %g", tc.k, got, tc.want)
		}
	}
	over := []ownerr.Record{unknown, rec(golden.AttnIn, 0, 2, 1.1e-6, 0), rec(golden.AttnIn, 0, 3, 1.3e-6, 0)}
	if !f.Over(c, &[]ownerr.Record{rec(golden.V, 0, 0, math.NaN(), 0)}[0], 4) {
		t.Error("a NaN own error is not over its floor")
	}
	if got := f.FirstOver(c, over, 4); got == nil || got.Pos != 3 {
		t.Errorf("FirstOver = %+v, want attn_in pos 3 (1.3e-6 > 4 x 3e-7; pos 2 is not, pos 9 unknown)", got)
	}
	ms := f.Margins(c, over)
	if len(ms) != 1 || ms[0].Worst.Pos != 3 || math.Abs(ms[0].Ratio-1.3e-6/3e-7) > 1e-12 {
		t.Errorf("Margins = %+v", ms)
	}
	if table := ownerr.FormatMargins(ms); !strings.Contains(table, "| attn_in | 1.3e-06 | layer 0 pos 3 | 3e-07 | 4.33 |") {
		t.Errorf("margin table:\n%s", table)
	}
}

// TestNoiseFile: the file's exact bytes (fixed order, four significant digits rounded up),
// the same bytes from a second write, and a round trip.
func TestNoiseFile(t *testing.T) {
	f := ownerr.Calibrate(ownerr.MethodReplay,
		[]ownerr.Record{rec(golden.AttnIn, 1, 1, 1.23449e-7, 2.0e-8), rec(golden.Logits, 2, 0, 9.99999e-6, 0.5),
			rec(golden.ResidualPreAttn, 0, 0, 0, 0), rec(golden.AttnIn, 0, 1, 1.2340001e-7, 1e-300)})
	f.Device, f.Reference, f.Model, f.Prompts = "cpu-f64acc", "cpu", "tiny", []string{"p0_short", "p6_len_16"}
	want := `{
  "version": 1,
  "device": "cpu-f64acc",
  "reference": "cpu",
  "model": "tiny",
  "method": "replay",
  "prompts": ["p0_short", "p6_len_16"],
  "floors": [
    {"stage": "residual_pre_attn", "layer": 0, "rel_l2": 0, "mae": 0, "n": 1},
    {"stage": "attn_in", "layer": 0, "rel_l2": 1.235e-07, "mae": 1.000e-300, "n": 1},
    {"stage": "attn_in", "layer": 1, "rel_l2": 1.235e-07, "mae": 2.000e-08, "n": 1},
    {"stage": "logits", "layer": 2, "rel_l2": 1.000e-05, "mae": 5.000e-01, "n": 1}
  ]
}
`
	var b1, b2 bytes.Buffer
	if err := f.Write(&b1); err != nil {
		t.Fatal(err)
	}
	if err := f.Write(&b2); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, b1.String()); diff != "" {
		t.Errorf("noise.json (-want +got):\n%s", diff)
	}
	if b1.String() != b2.String() {
		t.Error("two writes of the same floors differ")
	}
	path := ownerr.NoisePath(t.TempDir(), "cpu-f64acc", "tiny")
	if err := f.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	back, err := ownerr.ReadFloorsFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if back.Device != "cpu-f64acc" || back.Model != "tiny" || len(back.Floors) != 4 || back.Floors[1].RelL2 != 1.235e-7 ||
		back.Floors[3].Layer != 2 || back.Floors[3].N != 1 {
		t.Errorf("read back %+v", back)
	}
	var b3 bytes.Buffer
	if err := back.Write(&b3); err != nil || b3.String() != want {
		t.Errorf("rewriting what was read changes the file: %v\n%s", err, b3.String())
	}
	if _, err := ownerr.ReadFloorsFile(filepath.Join(t.TempDir(), "noise.json")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a missing file: %v, want fs.ErrNotExist", err)
	}
	nan := ownerr.Calibrate(ownerr.MethodReplay, []ownerr.Record{rec(golden.V, 0, 0, math.NaN(), 0), rec(golden.V, 0, 1, 1, 0)})
	if err := nan.Write(&b3); err == nil || !strings.Contains(err.Error(), "floor of v layer 0 is not finite") {
		t.Errorf("writing a NaN floor: %v", err)
	}
}

func TestReadFloorsRejects(t *testing.T) {
	head := `{"version": 1, "device": "d", "reference": "cpu", "model": "m", "method": "replay", "prompts": [], "floors": [`
	tests := []struct{ name, body, want string }{
		{"version", `{"version": 2, "method": "replay"}`, "x.json: version 2, this build reads version 1"},
		{"method", `{"version": 1, "method": "guess"}`, `x.json: method "guess" (want replay or per-op)`},
		{"stage", head + `{"stage": "attn", "layer": 0, "rel_l2": 0}]}`, `x.json: floor 1: unknown stage "attn"`},
		{"layer", head + `{"stage": "v", "rel_l2": 0}]}`, "x.json: floor 1 (v): layer and rel_l2 are required"},
		{"negative", head + `{"stage": "v", "layer": 1, "rel_l2": -1}]}`, "floor 1 (v layer 1): negative value"},
		{"twice", head + `{"stage": "v", "layer": 1, "rel_l2": 0}, {"stage": "v", "layer": 1, "rel_l2": 1}]}`,
			"floor 2: v layer 1 given twice"},
		{"unknown field", `{"version": 1, "method": "replay", "floor": []}`, `unknown field "floor"`},
		{"not json", `{"version": 1,`, "x.json: unexpected EOF"},
	}
	for _, tc := range tests {
		_, err := ownerr.ReadFloors(strings.NewReader(tc.body), "x.json")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
}
