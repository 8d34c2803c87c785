package golden_test

import (
	"fmt"

	"github.com/gretabisect/gretabisect/golden"
)

// Compare two traces held in memory and print each prompt's line. The sizes are the
// sketches' estimates (the exact values are MAE 1.49 and rel_l2 0.5).
func ExampleCompareRecords() {
	row := func(scale float32) []float32 {
		r := make([]float32, 256)
		for i := range r {
			r[i] = float32(i%7) * scale
		}
		return r
	}
	record := func(layer int, stage golden.Stage, r []float32) golden.Record {
		return golden.Record{
			PromptID: "p0_short", TokenID: 42, PosID: 4, Layer: golden.LayerOf(stage, layer, 22),
			TensorName: stage.String(), Hash: golden.HashRow(r), NZCount: golden.NonZero(r), Sketch: golden.NewSketch(r),
		}
	}
	base := []golden.Record{record(0, golden.EmbedOut, row(1)), record(0, golden.AttnIn, row(1)), record(0, golden.MLPOut, row(1))}
	cand := []golden.Record{record(0, golden.EmbedOut, row(1)), record(0, golden.AttnIn, row(1)), record(0, golden.MLPOut, row(1.5))}

	rep, err := golden.CompareRecords(cand, base, golden.Tolerance)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, p := range rep.Prompts {
		fmt.Println(p.Line())
	}
	fmt.Println(rep.Summary())
	// Output:
	// p0_short: FIRST_FAIL pos=4 layer=0 tensor=mlp_out category=MLP_OUTPUT (hash 53ab099c.. want 479e06e5.., MAE 1.44, rel_l2 0.592)
	// policy tolerance: 1 prompt (0 match, 1 diverged, 0 missing); 3 records compared, 1 mismatched, 0 missing
}
