package trace

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
)

func span(lo, hi int) []int { return seq(lo, hi) }

func cat(parts ...[]int) []int {
	var out []int
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func TestResolve(t *testing.T) {
	def := DefaultPlan()
	noDecode := DefaultPlan()
	noDecode.Decode = false
	decodeOnly := DefaultPlan()
	decodeOnly.Prefill = false
	all := Plan{AllLayers: true, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 2}
	crit := Plan{Positions: []int{3, 100}, Layers: []int{1, 30}, Prefill: true}
	tests := []struct {
		name            string
		plan            Plan
		nLayer, nPrompt int
		layers, pos     []int
	}{
		{"p6_len_32 default", def, 22, 1653, []int{0, 1, 2, 4, 8},
			cat(span(0, 16), span(818, 834), span(1637, 1653+5))},
		{"p6_len_16 default", def, 22, 827, []int{0, 1, 2, 4, 8},
			cat(span(0, 16), span(405, 421), span(811, 827+5))},
		{"p0_short: windows clipped to the prompt", def, 10, 5, []int{0, 1, 2, 4, 8}, span(0, 10)},
		{"shallow model drops deep layers", noDecode, 3, 40, []int{0, 1, 2}, span(0, 40)},
		{"decode phase only", decodeOnly, 22, 827, []int{0, 1, 2, 4, 8}, span(827, 832)},
		{"all", all, 4, 6, []int{0, 1, 2, 3}, span(0, 8)},
		{"critical positions beyond the prompt dropped", crit, 4, 50, []int{1}, []int{3}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sel := tc.plan.Resolve(tc.nLayer, tc.nPrompt)
			if diff := cmp.Diff(tc.layers, sel.Layers()); diff != "" {
				t.Errorf("layers (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.pos, sel.Positions()); diff != "" {
				t.Errorf("positions (-want +got):\n%s", diff)
			}
			if got := len(sel.Stages()); got != golden.NumStages {
				t.Errorf("%d stages selected, want all %d", got, golden.NumStages)
			}
		})
	}
}

func TestResolveStagesAndLogits(t *testing.T) {
	p := DefaultPlan()
	if err := p.SetStages("logits,attn_in"); err != nil {
		t.Fatal(err)
	}
	sel := p.Resolve(22, 827)
	if diff := cmp.Diff([]golden.Stage{golden.AttnIn, golden.Logits}, sel.Stages()); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	// logits ignore the layer list: the row at layer n_layer is wanted.
	if !sel.Want(golden.Logits, 22, 826) || sel.Want(golden.AttnIn, 3, 826) || !sel.Want(golden.AttnIn, 8, 826) {
		t.Error("Want disagrees with the plan")
	}
}

func TestSetLayersPositionsStages(t *testing.T) {
	tests := []struct {
		name, layers, positions string
		want                    Plan
		wantErr                 string
	}{
		{name: "lists", layers: "0, 3,7", positions: "826,last,windows",
			want: Plan{Layers: []int{0, 3, 7}, Positions: []int{826}, Last: true, Windows: true}},
		{name: "all", layers: "all", positions: "ALL",
			want: Plan{AllLayers: true, AllPositions: true}},
		{name: "bad layer", layers: "0,x", positions: "1", wantErr: `layers "0,x": "x" is not a non-negative integer`},
		{name: "negative layer", layers: "-1", positions: "1", wantErr: `"-1" is not a non-negative integer`},
		{name: "empty layers", layers: "", positions: "1", wantErr: `layers "": empty list`},
		{name: "bad position", layers: "1", positions: "826,first", wantErr: `positions "826,first": "first" is not`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Plan
			err := p.SetLayers(tc.layers)
			if err == nil {
				err = p.SetPositions(tc.positions)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, p); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
	var p Plan
	if err := p.SetStages("v,bogus"); err == nil || !strings.Contains(err.Error(), `unknown stage "bogus"`) {
		t.Errorf("SetStages(bogus) = %v", err)
	}
}

// TestSelectionKeys checks the planned keys of a selection and their order on each route:
// the prefill route's batched pass goes stage by stage, the decode route position by
// position, and generated tokens come after the prompt either way.
func TestSelectionKeys(t *testing.T) {
	plan := Plan{Layers: []int{1}, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 1,
		Stages: []golden.Stage{golden.EmbedOut, golden.AttnIn, golden.Logits}}
	sel := plan.Resolve(2, 2)
	name := func(keys []golden.Key) []string {
		var out []string
		for _, k := range keys {
			out = append(out, fmt.Sprintf("%s/%d@%d", k.TensorName, k.Layer, k.PosID))
		}
		return out
	}
	prefill := []string{"embed_out/-1@0", "embed_out/-1@1", "attn_in/1@0", "attn_in/1@1", "logits/2@0", "logits/2@1",
		"embed_out/-1@2", "attn_in/1@2", "logits/2@2"}
	if diff := cmp.Diff(prefill, name(sel.Keys("p", golden.RouteOrder(golden.RoutePrefill, 2)))); diff != "" {
		t.Errorf("prefill route (-want +got):\n%s", diff)
	}
	decode := []string{"embed_out/-1@0", "attn_in/1@0", "logits/2@0", "embed_out/-1@1", "attn_in/1@1", "logits/2@1",
		"embed_out/-1@2", "attn_in/1@2", "logits/2@2"}
	if diff := cmp.Diff(decode, name(sel.Keys("p", golden.RouteOrder(golden.RouteDecode, 2)))); diff != "" {
		t.Errorf("decode route (-want +got):\n%s", diff)
	}
}
