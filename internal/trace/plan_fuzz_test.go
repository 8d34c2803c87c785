package trace

import (
	"testing"
)

// FuzzPlanInput feeds arbitrary flag values and environment entries to the parsers: they
// must return errors, never panic, and whatever they accept must resolve.
func FuzzPlanInput(f *testing.F) {
	f.Add("0,1,2,4,8", "826,1652,last,windows", "v,logits", "GRETA_TRACE_B3_61_POS_3=1")
	f.Add("all", "all", "all", "GRETA_TRACE_STAGE_LAYERS=all")
	f.Add("-1", "x,,", "nope", "GRETA_TRACE_B3_61_=1")
	f.Fuzz(func(t *testing.T, layers, positions, stages, env string) {
		p := DefaultPlan()
		_ = p.SetLayers(layers)
		_ = p.SetPositions(positions)
		_ = p.SetStages(stages)
		q, err := PlanFromEnv(p, []string{env})
		if err == nil {
			p = q
		}
		sel := p.Resolve(4, 20)
		for _, pos := range sel.Positions() {
			if pos < 0 || pos >= 20+p.MaxNewTokens {
				t.Fatalf("position %d outside 0..%d", pos, 20+p.MaxNewTokens-1)
			}
		}
		for _, l := range sel.Layers() {
			if l < 0 || l >= 4 {
				t.Fatalf("layer %d outside 0..3", l)
			}
		}
	})
}
