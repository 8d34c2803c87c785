package engine

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
		{"stage=attn_ctx,layer=1,head=2,every=16,phase=3,zero",
			[]Fault{{Stage: golden.AttnCtx, Layer: 1, PosMax: -1, Every: 16, Phase: 3, HeadLo: 2, HeadLen: 1, Kind: Zero, Scale: 1}}},
		{"stage=v,head=0..1,pos>=4,nan", []Fault{{Stage: golden.V, Layer: AnyLayer, PosMin: 4, PosMax: -1, HeadLen: 2, Kind: NaN, Scale: 1}}},
		{"stage=mlp_out,ch=7,inf", []Fault{{Stage: golden.MLPOut, Layer: AnyLayer, PosMax: -1, ChLo: 7, ChLen: 1, Kind: Inf, Scale: 1}}},
		{"stage=q_post_rope,ch=10..19,sign", []Fault{{Stage: golden.QPostRope, Layer: AnyLayer, PosMax: -1, ChLo: 10, ChLen: 10, Kind: Sign, Scale: 1}}},
		{"stage=attn_out,round=bf16;stage=attn_out,round=f16", []Fault{
			{Stage: golden.AttnOut, Layer: AnyLayer, PosMax: -1, Kind: RoundBF16, Scale: 1},
			{Stage: golden.AttnOut, Layer: AnyLayer, PosMax: -1, Kind: RoundF16, Scale: 1},
		}},
		{"stage=k_post_rope,layer=2,pos>=5,shift=1", []Fault{{Stage: golden.KPostRope, Layer: 2, PosMin: 5, PosMax: -1, Kind: Shift, Shift: 1, Scale: 1}}},
		{"stage=v,every=2,ch=0..3,scale=2,add=1", []Fault{{Stage: golden.V, Layer: AnyLayer, PosMax: -1, Every: 2, ChLen: 4, Scale: 2, Add: 1}}},
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
		{"stage=v,every=1,scale=2", `field "every": "1": want a period of 2 or more`},
		{"stage=v,phase=3,scale=2", `field "phase" needs every=N`},
		{"stage=v,every=4,phase=4,scale=2", `field "phase": 4 is not below every=4`},
		{"stage=v,pos=5..6,every=8,phase=0,scale=2", `no position in pos=5..6 has p % 8 == 0`},
		{"stage=v,head=1,ch=3,scale=2", `fields "head" and "ch": give one of them`},
		{"stage=v,head=3..1,scale=2", `field "head": empty range "3..1"`},
		{"stage=v,ch=x,scale=2", `field "ch": "x" is not a non-negative integer`},
		{"stage=v,zero,scale=2", `give one kind (scale and add may go together)`},
		{"stage=v,zero,nan", `give one kind`},
		{"stage=v,round=f16,shift=2", `give one kind`},
		{"stage=v,zero=1", `field "zero" takes no value`},
		{"stage=v,zero,zero", `field "zero" given twice`},
		{"stage=v,round=f8", `field "round": "f8": want f16 or bf16`},
		{"stage=v,shift=0", `field "shift": "0": want a shift of 1 or more positions`},
		{"stage=logits,shift=1", `logits exist only at traced positions`},
		{"stage=v,pos<=2,shift=3", `positions pos<=2 have no row 3 positions earlier`},
		{"stage=v,scale=1", `the fault changes nothing`},
		{"stage=v,ch>=3,zero", `operator ">=" is only allowed for pos`},
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
		"stage=attn_ctx,layer=1,pos>=3,every=16,phase=3,head=2,zero",
		"stage=v,every=2,head=0..1,nan",
		"stage=mlp_out,pos=2..9,ch=7,inf",
		"stage=q_post_rope,ch=10..19,sign",
		"stage=attn_out,round=bf16;stage=attn_out,round=f16",
		"stage=k_post_rope,layer=2,pos>=5,shift=3",
		"stage=v,every=2,ch=0..3,scale=2,add=1",
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
	f.Add("stage=attn_ctx,layer=1,head=2..3,every=16,phase=3,zero;stage=v,ch=4,round=bf16;stage=v,pos>=2,shift=2")
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
