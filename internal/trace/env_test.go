package trace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

func TestPlanFromEnv(t *testing.T) {
	def := DefaultPlan()
	with := func(f func(*Plan)) Plan {
		p := DefaultPlan()
		f(&p)
		return p
	}
	tests := []struct {
		name    string
		env     []string
		want    Plan
		wantErr string
	}{
		{"nothing set", []string{"HOME=/x", "GRETA_MODEL=tiny"}, def, ""},
		{"layers", []string{"GRETA_TRACE_STAGE_LAYERS=0,5"}, with(func(p *Plan) { p.Layers = []int{0, 5} }), ""},
		{"stage toggles", []string{"GRETA_TRACE_B3_61_V=1", "GRETA_TRACE_B3_61_RESIDUAL_PRE_ATTN=1", "GRETA_TRACE_B3_61_LOGITS=0"},
			with(func(p *Plan) { p.Stages = []golden.Stage{golden.ResidualPreAttn, golden.V} }), ""},
		{"positions", []string{"GRETA_TRACE_B3_61_POS_1652=1", "GRETA_TRACE_B3_61_POS_7=true", "GRETA_TRACE_B3_61_POS_826=0"},
			with(func(p *Plan) { p.Positions = []int{7, 1652} }), ""},
		{"bad layers", []string{"GRETA_TRACE_STAGE_LAYERS=zero"}, def, "GRETA_TRACE_STAGE_LAYERS: layers \"zero\""},
		{"unknown stage", []string{"GRETA_TRACE_B3_61_QKV=1"}, def, "GRETA_TRACE_B3_61_QKV: unknown stage"},
		{"bad toggle", []string{"GRETA_TRACE_B3_61_V=yes"}, def, `GRETA_TRACE_B3_61_V="yes": want 1 or 0`},
		{"bad position", []string{"GRETA_TRACE_B3_61_POS_x=1"}, def, "GRETA_TRACE_B3_61_POS_x: position"},
		{"every stage off", []string{"GRETA_TRACE_B3_61_V=0"}, def, "every stage toggle is off"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := PlanFromEnv(DefaultPlan(), tc.env)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
