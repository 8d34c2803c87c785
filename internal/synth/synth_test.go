package synth

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gretabisect/gretabisect/internal/corpus"
	"github.com/gretabisect/gretabisect/internal/gguf"
	_ "github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

// tinyF32SHA256 pins the tiny model (f32, seed 0). Golden traces of every engine depend on
// these bytes: change it only together with re-recorded goldens.
const tinyF32SHA256 = "b3c38dcd5ad566cec5ec4e8d0e80b754ae5bb4d22123c3d4362d223142316f65"

func TestTinyHashAndTime(t *testing.T) {
	if _, err := vocabFor(Tiny); err != nil { // trained once per process; not part of the timing
		t.Fatal(err)
	}
	start := time.Now()
	img, err := Generate(Tiny, F32, 0)
	elapsed := time.Since(start)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("tiny f32: %d bytes generated in %v", len(img), elapsed)
	sum := sha256.Sum256(img)
	if got := hex.EncodeToString(sum[:]); got != tinyF32SHA256 {
		t.Errorf("SHA-256 of the tiny f32 model = %s, want %s", got, tinyF32SHA256)
	}
	// About 0.1 s natively (amd64, one core); the bound leaves room for -race and for
	// emulated architectures, and still catches a generator gone quadratic or allocating
	// per weight.
	if limit := 10 * time.Second; elapsed > limit {
		t.Errorf("generating the tiny model took %v, want well under a second natively (limit %v)", elapsed, limit)
	}
}

// Generation is deterministic (TestTinyHashAndTime pins it); the seed changes every tensor
// and is recorded in the metadata.
func TestGenerateDependsOnSeed(t *testing.T) {
	a, err := Generate(Tiny, F32, 5)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(Tiny, F32, 6)
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != len(b) {
		t.Fatalf("seeds 5 and 6: sizes %d and %d, want the same", len(a), len(b))
	}
	fa, err := gguf.Parse(a)
	if err != nil {
		t.Fatal(err)
	}
	fb, err := gguf.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	for i := range fa.Tensors {
		ta := &fa.Tensors[i]
		if bytes.Equal(fa.TensorData(ta), fb.TensorData(&fb.Tensors[i])) {
			t.Errorf("tensor %s is the same for seeds 5 and 6", ta.Name)
		}
	}
	if seed, err := fb.Uint(KeySeed); err != nil || seed != 6 {
		t.Errorf("%s = %d, %v; want 6", KeySeed, seed, err)
	}
}

func TestStreamIsCounterBased(t *testing.T) {
	s := newStream(7, "blk.0.attn_q.weight")
	d := dist{Mean: 0.5, Std: 2}
	whole := make([]float32, 1000)
	s.fill(whole, 0, d)
	parts := make([]float32, 1000)
	for _, cut := range [][2]int{{0, 1}, {1, 333}, {333, 334}, {334, 1000}} {
		s.fill(parts[cut[0]:cut[1]], uint64(cut[0]), d)
	}
	if diff := cmp.Diff(whole, parts); diff != "" {
		t.Errorf("filling in pieces differs from filling at once (-whole +pieces):\n%s", diff)
	}
	other := make([]float32, 1000)
	newStream(7, "blk.0.attn_k.weight").fill(other, 0, d)
	same := 0
	for i := range whole {
		if whole[i] == other[i] {
			same++
		}
	}
	if same > 10 {
		t.Errorf("streams of two tensor names agree on %d of 1000 values", same)
	}
}

// The first values of a stream, bit for bit: the same on every architecture.
func TestStreamValues(t *testing.T) {
	got := make([]float32, 4)
	newStream(0, "token_embd.weight").fill(got, 0, dist{Std: 1})
	bits := make([]uint32, len(got))
	for i, v := range got {
		bits[i] = math.Float32bits(v)
	}
	want := []uint32{0xbfbe36e0, 0xbeb79201, 0xbee23c51, 0x3f829495} // -1.48605 -0.35854 -0.44187 1.02016
	if diff := cmp.Diff(want, bits); diff != "" {
		t.Errorf("first values of the token_embd stream (-want +got):\n%s", diff)
	}
}

func TestBellMoments(t *testing.T) {
	s := newStream(1, "x")
	const n = 1 << 18
	var sum, sq float64
	lo, hi := int64(0), int64(0)
	for i := range uint64(n) {
		b := s.bell(i)
		sum += float64(b)
		sq += float64(b) * float64(b)
		lo, hi = min(lo, b), max(hi, b)
	}
	mean, variance := sum/n/bellStd, sq/n/(bellStd*bellStd)
	if math.Abs(mean) > 0.01 || math.Abs(variance-1) > 0.02 {
		t.Errorf("standardised bell: mean %.4f variance %.4f, want 0 and 1", mean, variance)
	}
	if lo < -2*0xffff || hi > 2*0xffff || hi-lo < 200000 {
		t.Errorf("bell range [%d, %d], want within and near ±131070", lo, hi)
	}
}

func TestTinyLlamaVocabularyIsPadded(t *testing.T) {
	small, err := vocabFor(Tiny)
	if err != nil {
		t.Fatal(err)
	}
	big, err := vocabFor(TinyLlama)
	if err != nil {
		t.Fatal(err)
	}
	if len(small.Tokens) != TinyVocab || len(big.Tokens) != 32000 || len(big.Scores) != 32000 || len(big.Types) != 32000 {
		t.Fatalf("sizes: trained %d, padded %d tokens %d scores %d types; want %d and 32000", len(small.Tokens),
			len(big.Tokens), len(big.Scores), len(big.Types), TinyVocab)
	}
	if !slices.Equal(small.Tokens, big.Tokens[:TinyVocab]) || big.Tokens[TinyVocab] != "<unused_0>" || big.Types[31999] != tokenizer.TypeUnused {
		t.Errorf("padding: tokens %q.., types %d; want the trained tokens, then <unused_0>.. of type unused",
			big.Tokens[TinyVocab-1:TinyVocab+1], big.Types[TinyVocab-1:TinyVocab+1])
	}
	ts, err := tokenizer.New(small)
	if err != nil {
		t.Fatal(err)
	}
	tb, err := tokenizer.New(big)
	if err != nil {
		t.Fatal(err)
	}
	text := corpus.Text[:4000] + " <unused_0> <unused_17>"
	if diff := cmp.Diff(ts.Encode(text, true, true), tb.Encode(text, true, true)); diff != "" {
		t.Errorf("the padded vocabulary encodes differently (-trained +padded):\n%s", diff)
	}
}

var errEnough = errors.New("enough")

// stopAfter accepts n bytes, then fails the write.
type stopAfter struct{ n int }

func (s *stopAfter) Write(b []byte) (int, error) {
	if s.n -= len(b); s.n < 0 {
		return 0, errEnough
	}
	return len(b), nil
}

// The tinyllama preset streams: writing its first 256 MB allocates a small fraction of
// that, and progress counts towards the full size.
func TestTinyLlamaStreams(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("writes 256 MB: too slow for -short or -race")
	}
	var last, total uint64
	w, err := NewWriter(TinyLlama, F32, 1, func(done, tot uint64) { last, total = done, tot })
	if err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	const limit = 256 << 20
	if err := w.Write(&stopAfter{n: limit}); !errors.Is(err, errEnough) {
		t.Fatalf("Write: %v, want the writer's error", err)
	}
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("first %d MB: %d MB allocated; progress %d of %d bytes", limit>>20, alloc>>20, last, total)
	if alloc > limit/8 {
		t.Errorf("allocated %d MB to write %d MB, want a small fraction", alloc>>20, limit>>20)
	}
	// 1 100 048 384 weights (TinyLlama 1.1B with a 32000 vocabulary), 4 bytes each.
	if want := uint64(1100048384 * 4); total != want {
		t.Errorf("progress total %d, want %d", total, want)
	}
	if last < limit/2 || last > limit {
		t.Errorf("progress at %d bytes after writing %d", last, limit)
	}
}

// BenchmarkGenerateTiny reports the generation of the tiny model, vocabulary excluded.
func BenchmarkGenerateTiny(b *testing.B) {
	for _, dt := range DTypes {
		b.Run(string(dt), func(b *testing.B) {
			if _, err := vocabFor(Tiny); err != nil {
				b.Fatal(err)
			}
			var n int
			for b.Loop() {
				img, err := Generate(Tiny, dt, 0)
				if err != nil {
					b.Fatal(err)
				}
				n = len(img)
			}
			b.SetBytes(int64(n))
		})
	}
}

// TestLlama3RopeFactors pins rope_freqs.weight of Llama 3.2 (head dim 64, base 500000,
// factor 32, low 1, high 4, original context 8192). Pair i has the wavelength 2 pi
// 500000^(i/32): below 8192/4 = 2048 for i <= 14 (factor 1), above 8192 for i >= 18
// (factor 32). Pair 16 by hand: 500000^(1/2) = 707.10678, wavelength 4442.8829, s =
// (8192/4442.8829 - 1)/3 = 0.28128869, factor 1/((1-s)/32 + s) = 3.2922621. Pairs 15 and 17
// the same way: 1.6513292 and 9.6667290.
func TestLlama3RopeFactors(t *testing.T) {
	got := llama32Rope.factors(64, 500000)
	want := make([]float32, 32)
	for i := range want {
		switch {
		case i <= 14:
			want[i] = 1
		case i >= 18:
			want[i] = 32
		}
	}
	want[15], want[16], want[17] = 1.6513292, 3.2922621, 9.6667290
	if diff := cmp.Diff(want, got, cmpopts.EquateApprox(1e-7, 0)); diff != "" {
		t.Errorf("llama3 factors (-want +got):\n%s", diff)
	}
	// The tiny preset's heads of 32: pair i has the wavelength 2 pi 500000^(i/16); pair 8 is
	// 2 pi 500000^(1/2), the same as pair 16 above.
	got = llama32Rope.factors(32, 500000)
	if got[7] != 1 || math.Abs(float64(got[8])-3.2922621) > 1e-6 || got[9] != 32 {
		t.Errorf("factors for head dim 32: %v", got)
	}
}

// The full-size presets have the published parameter counts of the models they imitate:
// Llama 3.2 1B 1,235,814,400 (plus the 32 RoPE factors) and Qwen2.5 0.5B 494,032,768, both
// with tied embeddings, Qwen's biases included.
func TestFullSizePresets(t *testing.T) {
	for _, tc := range []struct {
		p      Preset
		params uint64
	}{
		{Llama32_1B, 1235814400 + 32},
		{Qwen25_05B, 494032768},
		{TinyLlama, 1100048384},
	} {
		_, g, err := newWriter(tc.p, F32, 0, nil)
		if err != nil {
			t.Fatal(err)
		}
		if g.total != 4*tc.params {
			t.Errorf("%s: %d bytes of f32 tensors, want %d parameters", tc.p.Name, g.total, tc.params)
		}
		// Q4_K where the rows split into blocks of 256; Qwen's rows of 896 fall back to Q8_0.
		if _, _, err := newWriter(tc.p, Q4_K, 0, nil); err != nil {
			t.Errorf("%s q4_k: %v", tc.p.Name, err)
		}
	}
}
