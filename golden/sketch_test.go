package golden

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// perturb returns y and x = y + d for a perturbation d of the given kind scaled so that
// ||d||/||y|| is about rel. Values are float32, like real rows.
func perturb(rng *rand.Rand, n int, kind string, rel float64) (x, y []float32) {
	y = make([]float32, n)
	var y2 float64
	for i := range y {
		y[i] = float32(rng.NormFloat64() * 3)
		y2 += float64(y[i]) * float64(y[i])
	}
	d := make([]float64, n)
	switch kind {
	case "dense":
		for i := range d {
			d[i] = rng.NormFloat64()
		}
	case "sparse": // a few elements, as when one attention head or channel goes wrong
		for k := 0; k < 1+n/256; k++ {
			d[rng.IntN(n)] = rng.NormFloat64()
		}
	case "single":
		d[rng.IntN(n)] = 1
	case "offset": // a constant shift, as from a wrong bias or norm weight
		for i := range d {
			d[i] = 0.5
		}
	}
	var d2 float64
	for _, v := range d {
		d2 += v * v
	}
	scale := rel * math.Sqrt(y2) / math.Sqrt(d2)
	x = make([]float32, n)
	for i := range x {
		x[i] = float32(float64(y[i]) + scale*d[i])
	}
	return x, y
}

func within(est, exact, factor float64) bool {
	return est <= exact*factor && est >= exact/factor
}

// TestSketchAccuracy checks the claim: for rows of length >= 256 and true relative errors
// from 1e-6 to 1, the sketch estimates rel_l2 and MAE within 1.5x in >= 95% of trials. It
// logs the measured fraction for every decade, kind and length.
func TestSketchAccuracy(t *testing.T) {
	const trials = 200
	kinds := []string{"dense", "sparse", "single", "offset"}
	lengths := []int{256, 2048}
	if testing.Short() {
		lengths = []int{256}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range lengths {
		for _, kind := range kinds {
			for e := -6; e <= 0; e++ {
				rel := math.Pow(10, float64(e))
				okL2, okMAE := 0, 0
				worstL2, worstMAE := 1.0, 1.0
				for trial := 0; trial < trials; trial++ {
					x, y := perturb(rng, n, kind, rel)
					exact, err := ExactDiff(x, y)
					if err != nil {
						t.Fatal(err)
					}
					est, err := NewSketch(x).Estimate(NewSketch(y))
					if err != nil {
						t.Fatal(err)
					}
					if within(est.RelL2, exact.RelL2, 1.5) {
						okL2++
					}
					if within(est.MAE, exact.MAE, 1.5) {
						okMAE++
					}
					worstL2 = math.Max(worstL2, math.Max(est.RelL2/exact.RelL2, exact.RelL2/est.RelL2))
					worstMAE = math.Max(worstMAE, math.Max(est.MAE/exact.MAE, exact.MAE/est.MAE))
				}
				fL2, fMAE := float64(okL2)/trials, float64(okMAE)/trials
				t.Logf("n=%-5d %-6s rel=1e%+d: within 1.5x rel_l2 %5.1f%% (worst %.2fx)  MAE %5.1f%% (worst %.2fx)",
					n, kind, e, 100*fL2, worstL2, 100*fMAE, worstMAE)
				if fL2 < 0.95 || fMAE < 0.95 {
					t.Errorf("n=%d %s rel=1e%d: within 1.5x: rel_l2 %.3f, MAE %.3f of %d trials, want >= 0.95",
						n, kind, e, fL2, fMAE, trials)
				}
			}
		}
	}
}

func TestExactDiff(t *testing.T) {
	tests := []struct {
		name string
		x, y []float32
		want Diff
	}{
		{"equal", []float32{1, 2}, []float32{1, 2}, Diff{Exact: true}},
		{"shift", []float32{4, 0}, []float32{3, 4}, Diff{RelL2: math.Sqrt(17) / 5, MAE: 2.5, Exact: true}},
		{"zero baseline", []float32{1, 0}, []float32{0, 0}, Diff{RelL2: math.Inf(1), MAE: 0.5, Exact: true}},
		{"both zero", []float32{0, 0}, []float32{0, 0}, Diff{Exact: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ExactDiff(tc.x, tc.y)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ExactDiff(%v, %v) (-want +got):\n%s", tc.x, tc.y, diff)
			}
		})
	}
	if _, err := ExactDiff([]float32{1}, []float32{1, 2}); err == nil {
		t.Error("ExactDiff of rows of lengths 1 and 2: no error")
	}
}

func TestSketchIdenticalRowsEstimateZero(t *testing.T) {
	x, _ := perturb(rand.New(rand.NewPCG(3, 4)), 300, "dense", 0.1)
	got, err := NewSketch(x).Estimate(NewSketch(append([]float32(nil), x...)))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Diff{}, got); diff != "" {
		t.Errorf("estimate of a row against itself (-want +got):\n%s", diff)
	}
}

func TestSketchJSON(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{256, 32000} {
		x, _ := perturb(rng, n, "dense", 1)
		s := NewSketch(x)
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 1024 {
			t.Errorf("n=%d: sketch JSON is %d bytes, want <= 1024", n, len(b))
		}
		t.Logf("n=%d: sketch JSON %d bytes", n, len(b))
		var back Sketch
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if back.N != s.N || back.L2 != s.L2 || back.L1 != s.L1 || back.Version != SketchVersion {
			t.Errorf("n=%d: round trip gave n=%d l2=%v l1=%v v=%d, want n=%d l2=%v l1=%v v=%d",
				n, back.N, back.L2, back.L1, back.Version, s.N, s.L2, s.L1, SketchVersion)
		}
		for j := range s.Proj {
			if r := math.Abs(back.Proj[j]-s.Proj[j]) / math.Abs(s.Proj[j]); r > 1.0/(1<<36) {
				t.Errorf("n=%d: projection %d: %v after round trip, want %v (relative error %g)", n, j, back.Proj[j], s.Proj[j], r)
			}
		}
	}
}

func TestSketchNaNSurvives(t *testing.T) {
	row := make([]float32, 256)
	row[7] = float32(math.NaN())
	b, err := json.Marshal(NewSketch(row))
	if err != nil {
		t.Fatal(err)
	}
	var back Sketch
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	d, err := back.Estimate(NewSketch(make([]float32, 256)))
	if err != nil {
		t.Fatal(err)
	}
	if !math.IsNaN(d.RelL2) || !math.IsNaN(d.MAE) {
		t.Errorf("estimate against a row with NaN = %+v, want NaN for both", d)
	}
}

func TestSketchEstimateErrors(t *testing.T) {
	a, b := NewSketch(make([]float32, 256)), NewSketch(make([]float32, 257))
	if _, err := a.Estimate(b); err == nil {
		t.Error("estimate across row lengths 256 and 257: no error")
	}
	c := *a
	c.Version = 99
	if _, err := c.Estimate(a); err == nil {
		t.Error("estimate across sketch versions: no error")
	}
	var s Sketch
	for _, in := range []string{`{"v":1,"n":4,"d":"AAAA"}`, `{"v":1,"n":4,"d":"!"}`, `{"v":1,"n":-1}`, `[]`} {
		if err := json.Unmarshal([]byte(in), &s); err == nil {
			t.Errorf("unmarshal %s: no error", in)
		}
	}
}

// TestSketchDeterministic pins a digest of the full-precision sketch of a few rows (not of
// its JSON, whose 48-bit rounding would hide last-bit differences): a change of generator,
// accumulation order or fused multiply-adds (arm64) shows here. Run it on arm64 with
// GOARCH=arm64 go test -exec qemu-aarch64-static -run SketchDeterministic ./golden.
func TestSketchDeterministic(t *testing.T) {
	h := sha256.New()
	for _, n := range []int{256, 1000} {
		row := make([]float32, n)
		for i := range row {
			row[i] = float32(float32(i%17)*0.37) - 2.9 // no fused multiply-add on arm64
		}
		s := NewSketch(row)
		var b [8]byte
		for _, v := range append([]float64{s.L2, s.L1}, s.Proj[:]...) {
			binary.LittleEndian.PutUint64(b[:], math.Float64bits(v))
			h.Write(b[:])
		}
	}
	got := hex.EncodeToString(h.Sum(nil)[:8])
	const want = "85250c60f965e900"
	if got != want {
		t.Errorf("sketch digest = %s, want %s", got, want)
	}
}

// BenchmarkSketch times NewSketch at the row lengths of a TinyLlama trace (the K and V
// width, the model width, the FFN width, the vocabulary), then each kernel this machine runs.
func BenchmarkSketch(b *testing.B) {
	lengths := []int{256, 2048, 5632, 32000}
	for _, n := range lengths {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x, _ := perturb(rand.New(rand.NewPCG(7, 8)), n, "dense", 1)
			NewSketch(x)
			for b.Loop() {
				NewSketch(x)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/row")
		})
	}
	for _, k := range kernels {
		for _, n := range lengths {
			b.Run(fmt.Sprintf("%s/%d", k.name, n), func(b *testing.B) {
				x, _ := perturb(rand.New(rand.NewPCG(7, 8)), n, "dense", 1)
				t := projection(n)
				for b.Loop() {
					var s sums
					k.f(&s, x, t)
				}
			})
		}
	}
}

// BenchmarkSketchParallel sketches rows on every processor at once, as a recorder's workers
// do: ns/row is the time per row per processor, which the shared caches and memory bound.
func BenchmarkSketchParallel(b *testing.B) {
	for _, n := range []int{2048, 32000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			x, _ := perturb(rand.New(rand.NewPCG(7, 8)), n, "dense", 1)
			NewSketch(x)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					NewSketch(x)
				}
			})
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())*float64(runtime.GOMAXPROCS(0))/float64(b.N), "ns/row")
		})
	}
}

// A sketch of another version is kept as it was read and written back unchanged; estimates
// against it fail, so the comparison falls back to hashes.
func TestSketchOtherVersionSurvives(t *testing.T) {
	const in = `{"v":7,"n":4096,"d":"c29tZXRoaW5nIG5ldw=="}`
	var s Sketch
	if err := json.Unmarshal([]byte(in), &s); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(&s)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != in {
		t.Errorf("re-marshalled %s, want %s", out, in)
	}
	if _, err := s.Estimate(NewSketch(make([]float32, 4096))); err == nil {
		t.Error("estimate against a version 7 sketch: no error")
	}
}
