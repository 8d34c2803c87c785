//go:build rocm

package hip

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/synth"
	"github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// EnvBigModel names a GGUF file (a full-size preset from gretabisect synth, say) that the
// comparisons, the digests and the benchmarks also run on when set.
const EnvBigModel = "GRETA_MODEL"

// tinyFamily are the small generated models of each architecture every GPU test runs:
// tiny (llama, the embedded default), tiny-llama3 (4:1 heads, llama3 frequency factors,
// tied output) and tiny-qwen2 (14/2 heads, NEOX RoPE, q/k/v biases, tied output).
var tinyFamily = []string{model.TinySpec, synth.TinyLlama3.Name, synth.TinyQwen2.Name}

// openGPU starts the engine on m, skipping the test when no GPU is visible.
func openGPU(t testing.TB, m *model.Model) *Engine {
	t.Helper()
	e, err := New(&m.Model)
	if errors.Is(err, ErrNoDevice) {
		t.Skipf("no GPU to run on: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Close(); err != nil {
			t.Error(err)
		}
	})
	return e
}

var models = struct {
	sync.Mutex
	m map[string]*model.Model
}{m: map[string]*model.Model{}}

// openModel opens a model of tinyFamily by name, generating tiny-llama3 and tiny-qwen2 in
// memory (f32, seed 0), or a GGUF file by path.
func openModel(spec string) (*model.Model, error) {
	if spec == model.TinySpec || !slices.Contains(tinyFamily, spec) {
		return model.Open(spec)
	}
	p, err := synth.PresetByName(spec)
	if err != nil {
		return nil, err
	}
	img, err := synth.Generate(p, synth.F32, 0)
	if err != nil {
		return nil, err
	}
	f, err := gguf.Parse(img)
	if err != nil {
		return nil, err
	}
	return model.FromFile(f, spec)
}

// testModels returns the tiny family and, when GRETA_MODEL is set, that model too, by name.
func testModels(t testing.TB) map[string]*model.Model {
	t.Helper()
	specs := tinyFamily
	if p := os.Getenv(EnvBigModel); p != "" {
		specs = append(slices.Clone(specs), p)
	}
	out := map[string]*model.Model{}
	for _, s := range specs {
		m := testModel(t, s)
		out[m.Name] = m
	}
	return out
}

// testModel opens spec once per process.
func testModel(t testing.TB, spec string) *model.Model {
	t.Helper()
	models.Lock()
	defer models.Unlock()
	if models.m[spec] == nil {
		m, err := openModel(spec)
		if err != nil {
			t.Fatal(err)
		}
		models.m[spec] = m
	}
	return models.m[spec]
}

// forTiny runs f on each model of the tiny family, one subtest each.
func forTiny(t *testing.T, f func(t *testing.T, m *model.Model)) {
	for _, spec := range tinyFamily {
		m := testModel(t, spec)
		t.Run(m.Name, func(t *testing.T) { f(t, m) })
	}
}

func standardPrompts(t testing.TB, m *model.Model) []prompts.Prompt {
	t.Helper()
	ps, err := prompts.All(m.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func run(t testing.TB, e engine.Engine, m *model.Model, p prompts.Prompt, route string, faults ...engine.Fault) []golden.Record {
	t.Helper()
	res, err := driver.Run(e, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: trace.DefaultPlan(),
		Route: route, Faults: faults})
	if err != nil {
		t.Fatal(err)
	}
	return res.Records
}

// digest is one hash over every record's key and hash, to compare runs at a glance.
func digest(recs []golden.Record) string {
	h := sha256.New()
	for _, r := range recs {
		fmt.Fprintf(h, "%s %d %d %s %s\n", r.Phase, r.PosID, r.Layer, r.TensorName, r.Hash)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:8])
}

// compare fails the test unless every candidate record matches its baseline under p and
// both sides hold the same keys.
func compare(t *testing.T, what string, cand, base []golden.Record, p golden.Policy) {
	t.Helper()
	rep, err := golden.CompareRecords(cand, base, p)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}

	for _, pr := range rep.Prompts {
		if pr.Compared == 0 || pr.Compared != len(base) {
			t.Errorf("%s: %s: compared %d records of %d", what, pr.PromptID, pr.Compared, len(base))
		}
		if pr.FirstFail != nil {
			f := pr.FirstFail
			t.Errorf("%s: %s: FIRST_FAIL pos=%d layer=%d tensor=%s (%s, %d records fail; diff %+v)", what, pr.PromptID,
				f.PosID, f.Layer, f.TensorName, f.Reason, pr.Mismatched, f.Diff)
		}
		if pr.Missing() > 0 {
			t.Errorf("%s: %s: %d keys on one side only", what, pr.PromptID, pr.Missing())
		}
	}
}

// worst returns the largest relative L2 difference of a candidate record from its baseline
// (estimated from the sketches), and where it is: the margin a tolerance comparison had.
func worst(cand, base []golden.Record) (golden.Diff, golden.Key) {
	byKey := make(map[golden.Key]*golden.Sketch, len(base))
	for _, r := range base {
		byKey[golden.KeyOf(r)] = r.Sketch
	}
	var w golden.Diff
	var at golden.Key
	for _, r := range cand {
		b := byKey[golden.KeyOf(r)]
		if r.Sketch == nil || b == nil {
			continue
		}
		if d, err := r.Sketch.Estimate(b); err == nil && d.RelL2 >= w.RelL2 {
			w, at = d, golden.KeyOf(r)
		}
	}
	return w, at
}

// TestMatchesReference runs the three standard prompts on the GPU and on the CPU reference
// with the default trace plan: every traced stage must agree within the tolerance policy.
// It logs each prompt's largest difference and each GPU run's digest, so that separate
// runs can be compared.
func TestMatchesReference(t *testing.T) {
	againstCPU(t, func(t *testing.T, m *model.Model, gpu *Engine, cpu engine.Engine) {
		for _, p := range standardPrompts(t, m) {
			t0 := time.Now()
			got := run(t, gpu, m, p, golden.RoutePrefill)
			t1 := time.Now()
			want := run(t, cpu, m, p, golden.RoutePrefill)
			compare(t, p.ID, got, want, golden.Tolerance)
			w, at := worst(got, want)
			t.Logf("agree %s %s on %s: %d records, worst rel_l2 %.3g (MAE %.3g) at %s layer %d pos %d, digest %s (gpu %v, cpu %v)",
				m.Name, p.ID, gpu.Device(), len(got), w.RelL2, w.MAE, at.TensorName, at.Layer, at.PosID, digest(got),
				t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
		}
	})
}

// againstCPU runs f on each of testModels with the GPU engine and the CPU reference, one
// subtest each.
func againstCPU(t *testing.T, f func(t *testing.T, m *model.Model, gpu *Engine, cpu engine.Engine)) {
	ms := testModels(t)
	for _, name := range slices.Sorted(maps.Keys(ms)) {
		m := ms[name]
		t.Run(name, func(t *testing.T) {
			gpu := openGPU(t, m)
			cpu, err := ref.New(&m.Model)
			if err != nil {
				t.Fatal(err)
			}
			defer cpu.Close()
			f(t, m, gpu, cpu)
		})
	}
}

// TestDigests runs the standard prompts on the GPU only and compares one digest of the
// record hashes per prompt with the device's own golden, testdata/<device>/<model>.digests
// (the exact policy: same device, same bits); -update records it. A device without a
// golden yet is logged, not failed. Separate runs of the binary must print the same lines.
func TestDigests(t *testing.T) {
	ms := testModels(t)
	for _, name := range slices.Sorted(maps.Keys(ms)) {
		m := ms[name]
		t.Run(name, func(t *testing.T) {
			gpu := openGPU(t, m)
			var got strings.Builder
			for _, p := range standardPrompts(t, m) {
				start := time.Now()
				recs := run(t, gpu, m, p, golden.RoutePrefill)
				fmt.Fprintf(&got, "%s %s %d %s\n", name, p.ID, len(recs), digest(recs))
				t.Logf("digest %s %s %s: %d records %s (%v)", name, p.ID, gpu.Device(), len(recs), digest(recs),
					time.Since(start).Round(time.Millisecond))
			}
			path := filepath.Join("testdata", gpu.Device(), name+".digests")
			if testutil.Update() {
				if err := writeAtomic(path, got.String()); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if errors.Is(err, os.ErrNotExist) {
				t.Logf("no golden %s for this device yet: record it with -update", path)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("record hashes differ from %s (-want +got):\n%s", path, diff)
			}
		})
	}
}

// writeAtomic writes a golden through a temporary file and a rename, never half.
func writeAtomic(path, data string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".digests-*")
	if err != nil {
		return err
	}
	if _, err := tmp.WriteString(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return err
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// TestDeterministic runs a long prompt on the prefill route and the short one on the decode
// route twice each in one engine: the hashes must be equal. It logs each route's digest,
// which separate runs of the binary must repeat too.
func TestDeterministic(t *testing.T) {
	forTiny(t, func(t *testing.T, m *model.Model) {
		e := openGPU(t, m)
		ps := standardPrompts(t, m)
		for _, tc := range []struct {
			route string
			p     prompts.Prompt
		}{{golden.RoutePrefill, ps[1]}, {golden.RouteDecode, ps[0]}} {
			first := run(t, e, m, tc.p, tc.route)
			compare(t, tc.route+" second run", run(t, e, m, tc.p, tc.route), first, golden.Exact)
			t.Logf("digest %s %s %s route %s: %d records %s", m.Name, tc.p.ID, e.Device(), tc.route, len(first), digest(first))
		}
	})
}

// TestPassesChangeNoBit: a prompt cut into several passes gives the same bits as one pass.
func TestPassesChangeNoBit(t *testing.T) {
	forTiny(t, func(t *testing.T, m *model.Model) {
		e := openGPU(t, m)
		p := standardPrompts(t, m)[1]
		whole := run(t, e, m, p, golden.RoutePrefill)
		e.passRows = 100 // 827 tokens: 9 passes of 92 or fewer
		compare(t, "9 passes", run(t, e, m, p, golden.RoutePrefill), whole, golden.Exact)
	})
}

// TestDecodeRoute computes the short prompt one token at a time through the KV cache, on
// each model (GRETA_MODEL's too): every stage within tolerance of the CPU's decode route.
func TestDecodeRoute(t *testing.T) {
	againstCPU(t, func(t *testing.T, m *model.Model, gpu *Engine, cpu engine.Engine) {
		p := standardPrompts(t, m)[0]
		got := run(t, gpu, m, p, golden.RouteDecode)
		want := run(t, cpu, m, p, golden.RouteDecode)
		compare(t, "decode route", got, want, golden.Tolerance)
		w, at := worst(got, want)
		t.Logf("agree %s %s decode route on %s: %d records, worst rel_l2 %.3g (MAE %.3g) at %s layer %d pos %d, digest %s",
			m.Name, p.ID, gpu.Device(), len(got), w.RelL2, w.MAE, at.TensorName, at.Layer, at.PosID, digest(got))
	})
}

// TestTiedOutputUploadedOnce: the device holds each weight once, biases and the rope table
// included, and a tied model's logits read token_embd's buffer: no second (vocab, dim)
// matrix (for Llama 3.2 1B, 1 GB).
func TestTiedOutputUploadedOnce(t *testing.T) {
	forTiny(t, func(t *testing.T, m *model.Model) {
		e := openGPU(t, m)
		w, c := m.Weights, m.Config
		want := len(w.TokEmbd.Data) + len(w.OutNorm) + 2*len(ropeFreqs(&m.Model))
		if !c.TiedOutput {
			want += len(w.Output.Data)
		}
		for _, L := range w.Layers {
			for _, v := range [][]float32{L.AttnNorm, L.FFNNorm, L.Wq.Data, L.Wk.Data, L.Wv.Data, L.Wo.Data, L.WGate.Data,
				L.WUp.Data, L.WDown.Data, L.Bq, L.Bk, L.Bv} {
				want += len(v)
			}
		}
		got := 0
		for _, b := range e.allocs {
			if b != e.kc && b != e.vc && b != e.scratch {
				got += count(b)
			}
		}
		if got != want {
			t.Errorf("device holds %d weight elements, the model has %d (tied %v)", got, want, c.TiedOutput)
		}
		if shared := e.output == e.tokEmbd; shared != c.TiedOutput {
			t.Errorf("output shares token_embd's buffer: %v, tied: %v", shared, c.TiedOutput)
		}
		if c.QKVBias != (e.layers[0].bq.addr != 0 && e.layers[c.NLayer-1].bv.addr != 0) {
			t.Errorf("biases on the device %v %v, the model has them: %v", e.layers[0].bq, e.layers[c.NLayer-1].bv, c.QKVBias)
		}
		t.Logf("%s: %.1f MB of weights on the device (tied %v, biases %v, rope table %d)", m.Name, float64(4*got)/1e6,
			c.TiedOutput, c.QKVBias, count(e.ropeFreqs)/2)
	})
}

// TestFaultLocalisation plants faults on the GPU and on the CPU: compared with the clean
// CPU run, both must fail first at the same record.
func TestFaultLocalisation(t *testing.T) {
	m := testModel(t, model.TinySpec)
	gpu := openGPU(t, m)
	cpu, err := ref.New(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer cpu.Close()
	p := standardPrompts(t, m)[1]
	clean := run(t, cpu, m, p, golden.RoutePrefill)
	faults := []engine.Fault{
		{Stage: golden.EmbedOut, PosMin: 820, PosMax: -1, Scale: 1, Add: 0.01},
		{Stage: golden.KPostRope, Layer: 3, PosMin: 826, PosMax: -1, Scale: 1.5},
		{Stage: golden.AttnIn, Layer: 1, PosMin: 0, PosMax: 5, Scale: 1.01},
		{Stage: golden.V, Layer: 0, PosMin: 826, PosMax: 826, Scale: 1.01},
		{Stage: golden.AttnCtx, Layer: 2, PosMin: 826, PosMax: -1, Scale: 1, Add: 0.01},
		{Stage: golden.MLPOut, Layer: 8, PosMin: 826, PosMax: 826, Scale: 1.02},
		{Stage: golden.ResidualPostMLP, Layer: engine.AnyLayer, PosMin: 826, PosMax: 826, Scale: 1.001},
		{Stage: golden.Logits, PosMin: 826, PosMax: 826, Scale: 1, Add: 1},
		// The shapes the device kernel applies besides scale and add.
		{Stage: golden.AttnCtx, Layer: 2, PosMin: 826, PosMax: -1, HeadLo: 1, HeadLen: 1, Kind: engine.Zero},
		{Stage: golden.MLPOut, Layer: 4, PosMax: -1, Every: 64, Phase: 5, ChLo: 10, ChLen: 20, Kind: engine.Sign},
		{Stage: golden.QPostRope, Layer: 1, PosMin: 826, PosMax: -1, Kind: engine.RoundBF16},
		{Stage: golden.V, Layer: 0, PosMin: 826, PosMax: 826, ChLo: 3, ChLen: 1, Kind: engine.NaN},
		{Stage: golden.Logits, PosMin: 826, PosMax: 826, ChLo: 7, ChLen: 1, Kind: engine.Inf},
	}
	first := func(recs []golden.Record) string {
		rep, err := golden.CompareRecords(recs, clean, golden.Tolerance)
		if err != nil {
			t.Fatal(err)
		}
		f := rep.Prompts[0].FirstFail
		if f == nil {
			return "none"
		}
		return fmt.Sprintf("pos=%d layer=%d tensor=%s category=%s", f.PosID, f.Layer, f.TensorName, f.Category)
	}
	for _, f := range faults {
		t.Run(fmt.Sprintf("%s_L%d_pos%d", f.Stage, f.Layer, f.PosMin), func(t *testing.T) {
			want := first(run(t, cpu, m, p, golden.RoutePrefill, f))
			got := first(run(t, gpu, m, p, golden.RoutePrefill, f))
			if want == "none" {
				t.Fatalf("the fault %+v is not seen on the CPU", f)
			}
			if got != want {
				t.Errorf("GPU FIRST_FAIL %s, CPU %s", got, want)
			}
		})
	}
}

// TestShiftRefused: a row shift needs rows of earlier passes, which the device does not
// keep; the run is refused with one line naming the fault.
func TestShiftRefused(t *testing.T) {
	m := testModel(t, model.TinySpec)
	gpu := openGPU(t, m)
	p := standardPrompts(t, m)[0]
	_, err := driver.Run(gpu, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: trace.DefaultPlan(),
		Faults: []engine.Fault{{Stage: golden.V, Layer: 1, PosMin: 2, PosMax: -1, Kind: engine.Shift, Shift: 1}}})
	if err == nil || !strings.Contains(err.Error(), "fault stage=v,layer=1,pos>=2,shift=1: a row shift is not supported on the hip backend") {
		t.Errorf("a shift on the GPU: %v", err)
	}
}

// TestNewRefusesInconsistentModel: a hand-built model whose tensors do not match its
// configuration is refused before any device work, naming the tensor.
func TestNewRefusesInconsistentModel(t *testing.T) {
	m := handModel()
	m.Weights.Layers[1].Wv.Name, m.Weights.Layers[1].Wv.Rows = "blk.1.attn_v.weight", 5
	_, err := New(&m.Model)
	if err == nil || !strings.Contains(err.Error(), `tensor "blk.1.attn_v.weight": 5x8 with 32 values, the config wants 4x8`) {
		t.Fatalf("New(inconsistent model) = %v, want the tensor named", err)
	}
}

// TestErrorsName: a bad input or a shape that does not fit its buffer is an error naming
// the kernel, the stage, the layer and the shapes, never a crash.
func TestErrorsName(t *testing.T) {
	m := handModel()
	e := openGPU(t, m)
	if _, err := e.Forward([]int32{1, 10}, 0, nil); err == nil || !strings.Contains(err.Error(), "token 10 at position 1 outside the vocabulary") {
		t.Errorf("Forward(token 10) = %v", err)
	}
	if _, err := e.Forward([]int32{1, 2}, 15, nil); err == nil || !strings.Contains(err.Error(), "positions 15..16 outside the context length 16") {
		t.Errorf("Forward(positions 15..16) = %v", err)
	}
	if _, err := e.Forward([]int32{1, 2, 3}, 0, nil); err != nil {
		t.Fatal(err)
	}
	// The activations hold 3 rows: 4 is a shape that does not fit.
	err := e.rmsnorm("attn", 0, e.x, e.layers[0].attnNorm, 4, e.xb)
	want := regexp.MustCompile(`^rmsnorm \(attn\) layer 0: x holds 24 elements, the shapes need 32; x \[4 8\] w \[8\]$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Errorf("rmsnorm past the end = %v, want to match %s", err, want)
	}
	var le *libError
	if !errors.As(err, &le) {
		t.Errorf("error %v does not wrap the library's error", err)
	}
}
