package trace

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gretabisect/gretabisect/golden"
)

func TestTop5(t *testing.T) {
	nan := float32(math.NaN())
	tests := []struct {
		name   string
		logits []float32
		want   []int
	}{
		{"ordered", []float32{1, 5, 3, 9, 7, 2, 8}, []int{3, 6, 4, 1, 2}},
		{"ties by lower id", []float32{2, 3, 3, 1, 3, 2, 3}, []int{1, 2, 4, 6, 0}},
		{"NaN last", []float32{nan, -1, nan, -2, -3, -4}, []int{1, 3, 4, 5, 0}},
		{"short vocabulary", []float32{0, 1}, []int{1, 0}},
		{"negative infinity", []float32{float32(math.Inf(-1)), -1e30, 0, 0, 0, 0}, []int{2, 3, 4, 5, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, Top5(tc.logits)); diff != "" {
				t.Errorf("Top5(%v) (-want +got):\n%s", tc.logits, diff)
			}
		})
	}
}

// TestTop5Random checks Top5 against a full sort of (value, id) pairs on rows with many
// ties and NaNs.
func TestTop5Random(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for trial := range 500 {
		n := 1 + rng.IntN(40)
		logits := make([]float32, n)
		for i := range logits {
			switch rng.IntN(5) {
			case 0:
				logits[i] = float32(math.NaN())
			default:
				logits[i] = float32(rng.IntN(6) - 3)
			}
		}
		ids := make([]int, n)
		for i := range ids {
			ids[i] = i
		}
		slices.SortStableFunc(ids, func(a, b int) int {
			if above(logits[a], a, logits[b], b) {
				return -1
			}
			return 1
		})
		if diff := cmp.Diff(ids[:min(5, n)], Top5(logits)); diff != "" {
			t.Fatalf("trial %d, Top5(%v) (-sorted +got):\n%s", trial, logits, diff)
		}
	}
}

func TestPhase(t *testing.T) {
	for pos, want := range []string{golden.PhasePrefill, golden.PhasePrefill, golden.PhasePrefillLast, golden.PhaseDecode} {
		if got := Phase(pos, 3); got != want {
			t.Errorf("Phase(%d, 3) = %q, want %q", pos, got, want)
		}
	}
}

// TestRecorder hands rows over out of causal order, as a batched and a decode pass would,
// and checks every computed field and the order of the result.
func TestRecorder(t *testing.T) {
	t.Setenv(EnvGitCommit, "abc123")
	dir := t.TempDir()
	r := NewRecorder("p", 2, 4, dir)
	r.Tokens = []int32{1, 42}
	row := func(vals ...float32) []float32 { return vals }
	r.Sink(golden.Logits, 4, 1, row(0, 3, 1, 3, 0, -1))
	r.Sink(golden.AttnIn, 0, 1, row(1, 0))
	r.Route = golden.RouteDecode
	r.Tokens = append(r.Tokens, 7)
	r.Sink(golden.AttnIn, 0, 2, row(0, 0))
	r.Sink(golden.EmbedOut, -1, 0, row(0.5, 2))
	r.Sink(golden.ResidualPreAttn, 0, 0, row(2))
	recs, err := r.Close()
	if err != nil {
		t.Fatal(err)
	}
	hash := func(b ...byte) string {
		s := sha256.Sum256(b)
		return "sha256:" + hex.EncodeToString(s[:])
	}
	want := []golden.Record{
		{PromptID: "p", TokenID: 1, PosID: 0, LogicalTokIdx: 0, Phase: "prefill", Layer: -1, TensorName: "embed_out",
			Route: "decode", Hash: hash(0, 0, 0, 0x3f, 0, 0, 0, 0x40), NZCount: 2, Shape: []int{2}},
		{PromptID: "p", TokenID: 1, PosID: 0, LogicalTokIdx: 0, Phase: "prefill", Layer: 0, TensorName: "residual_pre_attn",
			Route: "decode", Hash: hash(0, 0, 0, 0x40), NZCount: 1, Shape: []int{1}},
		{PromptID: "p", TokenID: 42, PosID: 1, LogicalTokIdx: 1, Phase: "prefill_last", Layer: 0, TensorName: "attn_in",
			Route: "prefill", Hash: hash(0, 0, 0x80, 0x3f, 0, 0, 0, 0), NZCount: 1, Shape: []int{2}},
		{PromptID: "p", TokenID: 7, PosID: 2, LogicalTokIdx: 2, Phase: "decode", Layer: 0, TensorName: "attn_in",
			Route: "decode", Hash: hash(0, 0, 0, 0, 0, 0, 0, 0), NZCount: 0, Shape: []int{2}},
		{PromptID: "p", TokenID: 42, PosID: 1, LogicalTokIdx: 1, Phase: "prefill_last", Layer: 4, TensorName: "logits",
			Route: "prefill", NZCount: 4, Top5Tokens: []int{1, 3, 2, 0, 4}, Shape: []int{6}},
	}
	want[4].Hash = golden.HashRow([]float32{0, 3, 1, 3, 0, -1})
	ignore := cmpopts.IgnoreFields(golden.Record{}, "Timestamp", "Sketch", "RawFile", "DType", "GitCommitHash")
	if diff := cmp.Diff(want, recs, ignore); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	for _, rec := range recs {
		if rec.GitCommitHash != "abc123" || rec.DType != "float32" || rec.Sketch == nil || rec.Timestamp == "" {
			t.Errorf("%s pos %d: commit %q dtype %q sketch %v timestamp %q", rec.TensorName, rec.PosID,
				rec.GitCommitHash, rec.DType, rec.Sketch, rec.Timestamp)
		}
		raw, err := os.ReadFile(filepath.Join(dir, rec.RawFile))
		if err != nil {
			t.Fatal(err)
		}
		// The data ends the file; the header is padded so it starts at a multiple of 64.
		data := raw[len(raw)-4*rec.Shape[0]:]
		if got := hash(data...); got != rec.Hash || (len(raw)-len(data))%64 != 0 {
			t.Errorf("%s: raw data hash %s, header %d bytes; record hash %s", rec.RawFile, got, len(raw)-len(data), rec.Hash)
		}
	}
}
