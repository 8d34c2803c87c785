package golden

import (
	"math/rand/v2"
	"testing"
)

// demoRecords builds a baseline and a candidate that exercise every part of a report:
//
//   - p0_short: rounding noise (rel 1e-6) everywhere, then a fault in layer 2's attention
//     context from position 3 that spreads downstream: FIRST_FAIL layer 2 attn_ctx pos 3.
//   - p6_len_16: the input token at 826 differs (an input divergence at embed_out); layer 1
//     is in seed format (no sketch), so its differences have no size.
//   - p6_len_32: a baseline prompt the candidate lacks.
//   - p1_mid: identical, but one record is missing from the candidate and a stage name
//     outside the table is traced.
func demoRecords(t *testing.T) (cand, base []Record) {
	t.Helper()
	rng := rand.New(rand.NewPCG(11, 12))
	const n = 256
	add := func(k Key, token int, rel float64, sketch bool) {
		y := make([]float32, n)
		for i := range y {
			y[i] = float32(2*rng.Float64() - 1)
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = float32(float64(y[i]) * (1 + rel*(2*rng.Float64()-1)*1.7))
		}
		for side, row := range [][]float32{x, y} {
			r := Record{
				PromptID: k.PromptID, TokenID: token, PosID: k.PosID, LogicalTokIdx: k.PosID,
				Phase: PhasePrefill, Layer: k.Layer, TensorName: k.TensorName, Route: RoutePrefill,
				Hash: HashRow(row), NZCount: NonZero(row), Shape: []int{n}, DType: "f32",
			}
			if sketch {
				r.Sketch = NewSketch(row)
			}
			if side == 0 {
				cand = append(cand, r)
			} else {
				base = append(base, r)
			}
		}
	}
	const nLayer = 4
	for pos := 0; pos < 5; pos++ {
		add(Key{"p0_short", pos, -1, "embed_out"}, 100+pos, 0, true)
		for layer := 0; layer < nLayer; layer++ {
			for _, s := range Stages() {
				if !s.PerLayer {
					continue
				}
				rel := 1e-6 * float64(1+layer)
				if pos >= 3 && (layer > 2 || (layer == 2 && s.Stage >= AttnCtx)) {
					rel = 0.05 * float64(1+int(s.Stage)%4) / float64(1+layer-2)
				}
				add(Key{"p0_short", pos, layer, s.Name}, 100+pos, rel, true)
			}
		}
		add(Key{"p0_short", pos, nLayer, "logits"}, 100+pos, map[bool]float64{true: 0.02, false: 3e-5}[pos >= 3], true)
	}
	for pos := 824; pos <= 826; pos++ {
		token := 7000 + pos
		rel := 0.0
		if pos == 826 {
			rel = 0.5
		}
		add(Key{"p6_len_16", pos, -1, "embed_out"}, token, rel, true)
		for layer := 0; layer < 2; layer++ {
			for _, st := range []Stage{ResidualPreAttn, AttnIn, QPreRope, MLPOut, ResidualPostMLP} {
				add(Key{"p6_len_16", pos, layer, st.String()}, token, rel, layer == 0)
			}
		}
		add(Key{"p6_len_16", pos, 22, "logits"}, token, rel, true) // layers 2-21 untraced
	}
	// The candidate read token 5 instead of 7826 at position 826.
	for i := range cand {
		if cand[i].PromptID == "p6_len_16" && cand[i].PosID == 826 {
			cand[i].TokenID = 5
		}
	}
	before := len(cand)
	for layer := 0; layer < 2; layer++ {
		add(Key{"p6_len_32", 1652, layer, "residual_pre_attn"}, 9, 0, true)
	}
	cand = cand[:before]
	for pos := 0; pos < 2; pos++ {
		for _, name := range []string{"embed_out", "residual_pre_attn", "custom_probe"} {
			layer := 0
			if name == "embed_out" {
				layer = -1
			}
			add(Key{"p1_mid", pos, layer, name}, 40+pos, 0, true)
		}
	}
	cand = cand[:len(cand)-1] // drop the candidate's p1_mid custom_probe at position 1
	return cand, base
}

func demoReport(t *testing.T) *Report {
	t.Helper()
	cand, base := demoRecords(t)
	rep, err := CompareRecords(cand, base, Tolerance)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
