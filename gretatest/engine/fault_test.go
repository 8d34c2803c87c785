package engine

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
)

func mustFault(t *testing.T, spec string) Fault {
	t.Helper()
	fs, err := ParseFaults(spec)
	if err != nil || len(fs) != 1 {
		t.Fatalf("ParseFaults(%q) = %v, %v", spec, fs, err)
	}
	return fs[0]
}

func TestFaultApplyKinds(t *testing.T) {
	row := []float32{1.5, -2, 0.1, 3, 70000, -1e-6}
	nan := math.Float32frombits(0x7fc00000)
	inf := float32(math.Inf(1))
	tests := []struct {
		spec string
		want []float32
	}{
		{"stage=v,scale=2,add=1", []float32{4, -3, 1.2, 7, 140001, 0.999998}},
		{"stage=v,ch=1..2,zero", []float32{1.5, 0, 0, 3, 70000, -1e-6}},
		{"stage=v,ch=0,nan", []float32{nan, -2, 0.1, 3, 70000, -1e-6}},
		{"stage=v,ch=5,inf", []float32{1.5, -2, 0.1, 3, 70000, inf}},
		{"stage=v,sign", []float32{-1.5, 2, -0.1, -3, -70000, 1e-6}},
		{"stage=v,ch=2..5,round=f16", []float32{1.5, -2, golden.RoundF16(0.1), 3, inf, golden.RoundF16(-1e-6)}},
		{"stage=v,ch=2..3,round=bf16", []float32{1.5, -2, golden.RoundBF16(0.1), 3, 70000, -1e-6}},
	}
	for _, tt := range tests {
		got := append([]float32(nil), row...)
		mustFault(t, tt.spec).Apply(got)
		for i := range got {
			if math.Float32bits(got[i]) != math.Float32bits(tt.want[i]) {
				t.Errorf("%s: element %d = %g (%#08x), want %g (%#08x)", tt.spec, i, got[i],
					math.Float32bits(got[i]), tt.want[i], math.Float32bits(tt.want[i]))
			}
		}
	}
}

func TestFaultPeriod(t *testing.T) {
	f := mustFault(t, "stage=v,pos=10..40,every=8,phase=3,zero")
	var got []int
	for p := 0; p < 60; p++ {
		if f.Matches(golden.V, 0, p) {
			got = append(got, p)
		}
	}
	if diff := cmp.Diff([]int{11, 19, 27, 35}, got); diff != "" {
		t.Errorf("positions (-want +got):\n%s", diff)
	}
}

func TestResolveFaults(t *testing.T) {
	widths := map[golden.Stage]int{golden.KPostRope: 64, golden.AttnCtx: 256}
	width := func(st golden.Stage) int { return widths[st] }
	got, err := ResolveFaults([]Fault{
		mustFault(t, "stage=attn_ctx,head=3..4,zero"),
		mustFault(t, "stage=k_post_rope,ch=5..9,sign"),
	}, 32, width)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].ChLo != 96 || got[0].ChLen != 64 || got[0].HeadLen != 0 || got[1].ChLo != 5 || got[1].ChLen != 5 {
		t.Errorf("resolved %+v", got)
	}
	for _, tt := range []struct{ spec, want string }{
		{"stage=k_post_rope,head=2,zero", `fault 1 (stage=k_post_rope,head=2,zero): heads 2 (channels 64..95 at head_dim 32) outside the 64 channels of k_post_rope (2 heads of 32)`},
		{"stage=k_post_rope,ch=60..64,zero", `fault 1 (stage=k_post_rope,ch=60..64,zero): channels 60..64 outside the 64 channels of k_post_rope (2 heads of 32)`},
	} {
		_, err := ResolveFaults([]Fault{mustFault(t, tt.spec)}, 32, width)
		if err == nil || err.Error() != tt.want {
			t.Errorf("ResolveFaults(%s) error = %v, want %s", tt.spec, err, tt.want)
		}
	}
}

// shiftRun feeds rows 0..n-1 of data (width w) through a tap in calls of the given sizes and
// returns what the tap made of them.
func shiftRun(faults []Fault, data []float32, w int, sizes func() int) []float32 {
	out := append([]float32(nil), data...)
	tap := &Tap{Faults: faults}
	n := len(data) / w
	for p := 0; p < n; {
		q := min(p+sizes(), n)
		tap.Rows(golden.V, 1, p, w, out[p*w:q*w])
		p = q
	}
	return out
}

// TestShiftChunking checks that a row shift gives the same rows whether positions come in
// chunks of 64 (prefill), one at a time (decode) or in random splits, and that each matching
// row holds its channels from the clean row K positions earlier.
func TestShiftChunking(t *testing.T) {
	const w, n = 8, 150
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]float32, w*n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	faults := []Fault{
		mustFault(t, "stage=v,layer=1,pos>=5,every=3,phase=1,ch=2..5,shift=3"),
		mustFault(t, "stage=v,layer=1,pos=100..120,shift=70"), // sources from an earlier chunk
		mustFault(t, "stage=v,layer=0,shift=1"),               // another layer: never applied
	}
	want := append([]float32(nil), data...)
	for p := n - 1; p >= 0; p-- { // the definition, fault by fault
		if p >= 5 && p%3 == 1 {
			copy(want[p*w+2:p*w+6], data[(p-3)*w+2:(p-3)*w+6])
		}
	}
	after1 := append([]float32(nil), want...)
	for p := 100; p <= 120; p++ {
		copy(want[p*w:(p+1)*w], after1[(p-70)*w:(p-69)*w])
	}
	for name, sizes := range map[string]func() int{
		"prefill": func() int { return 64 },
		"decode":  func() int { return 1 },
		"random":  func() int { return 1 + rng.IntN(20) },
	} {
		got := shiftRun(faults, data, w, sizes)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s: rows differ from the definition (-want +got):\n%s", name, diff)
		}
	}
}

func TestFaultChannelsUnresolved(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "before ResolveFaults") {
			t.Errorf("Apply of an unresolved head fault: recover() = %v", r)
		}
	}()
	mustFault(t, "stage=v,head=1,zero").Apply(make([]float32, 64))
}
