package trace

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

func TestParseFaults(t *testing.T) {
	tests := []struct {
		spec string
		want []Fault
	}{
		{"stage=k_post_rope,layer=3,pos>=826,scale=1.001",
			[]Fault{{Stage: golden.KPostRope, Layer: 3, PosMin: 826, PosMax: -1, Scale: 1.001}}},
		{"stage=v,pos=5,add=0.5", []Fault{{Stage: golden.V, Layer: AnyLayer, PosMin: 5, PosMax: 5, Scale: 1, Add: 0.5}}},
		{"stage=attn_ctx,layer=*,pos<=10,scale=2", []Fault{{Stage: golden.AttnCtx, Layer: AnyLayer, PosMin: 0, PosMax: 10, Scale: 2}}},
		{" stage = logits , pos = 3..7 , scale = -1 ", []Fault{{Stage: golden.Logits, Layer: AnyLayer, PosMin: 3, PosMax: 7, Scale: -1}}},
		{"stage=embed_out,add=1;stage=mlp_out,layer=0,scale=0.5;", []Fault{
			{Stage: golden.EmbedOut, Layer: AnyLayer, PosMin: 0, PosMax: -1, Scale: 1, Add: 1},
			{Stage: golden.MLPOut, Layer: 0, PosMin: 0, PosMax: -1, Scale: 0.5},
		}},
		{"", nil},
	}
	for _, tt := range tests {
		got, err := ParseFaults(tt.spec)
		if err != nil {
			t.Errorf("ParseFaults(%q): %v", tt.spec, err)
			continue
		}
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("ParseFaults(%q) (-want +got):\n%s", tt.spec, diff)
		}
	}
}

func TestParseFaultsErrors(t *testing.T) {
	tests := []struct{ spec, want string }{
		{"layer=3,scale=2", `fault 1 "layer=3,scale=2": field "stage" missing`},
		{"stage=nope,scale=2", `field "stage": unknown stage "nope"`},
		{"stage=v,layer=-1,scale=2", `field "layer": "-1" is not a non-negative integer`},
		{"stage=v,pos>=x,scale=2", `field "pos": "x" is not a non-negative integer`},
		{"stage=v,pos=9..3,scale=2", `field "pos": empty range "9..3"`},
		{"stage=v,scale=abc", `field "scale": "abc" is not a finite number`},
		{"stage=v,add=NaN", `field "add": "NaN" is not a finite number`},
		{"stage=v", `the fault changes nothing`},
		{"stage=v,scale=2,color=red", `unknown field "color"`},
		{"stage=v,scale=2,scale=3", `field "scale" given twice`},
		{"stage=v,layer>=2,scale=2", `field "layer": operator ">=" is only allowed for pos`},
		{"stage=v,scale=2;stage=v,junk", `fault 2 "stage=v,junk": field "junk": want name=value`},
	}
	for _, tt := range tests {
		_, err := ParseFaults(tt.spec)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseFaults(%q) error = %v, want it to contain %q", tt.spec, err, tt.want)
		}
	}
}

func TestFaultStringRoundTrip(t *testing.T) {
	for _, spec := range []string{
		"stage=k_post_rope,layer=3,pos>=826,scale=1.001",
		"stage=v,pos=5,add=0.5",
		"stage=attn_ctx,pos<=10,scale=2",
		"stage=logits,pos=3..7,scale=-1,add=0.25",
		"stage=embed_out,add=1;stage=mlp_out,layer=0,scale=0.5",
	} {
		faults, err := ParseFaults(spec)
		if err != nil {
			t.Fatalf("ParseFaults(%q): %v", spec, err)
		}
		if got := FormatFaults(faults); got != spec {
			t.Errorf("FormatFaults(ParseFaults(%q)) = %q", spec, got)
		}
	}
}

func FuzzParseFaults(f *testing.F) {
	f.Add("stage=k_post_rope,layer=3,pos>=826,scale=1.001")
	f.Add("stage=v,pos=1..2,add=1;stage=logits,scale=2")
	f.Fuzz(func(t *testing.T, spec string) {
		faults, err := ParseFaults(spec)
		if err != nil {
			return
		}
		// What parses must format back to a spec that parses to the same faults.
		again, err := ParseFaults(FormatFaults(faults))
		if err != nil {
			t.Fatalf("reparse of %q: %v", FormatFaults(faults), err)
		}
		if diff := cmp.Diff(faults, again); diff != "" {
			t.Fatalf("round trip of %q (-first +second):\n%s", spec, diff)
		}
	})
}
