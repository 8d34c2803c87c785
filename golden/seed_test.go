package golden

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/testutil"
)

// The seed's first-failure table: what both hand-made trace pairs under testdata/ must give.
// MAE is the exact value the raw pair is built to; the pure seed pair has no size (n/a).
var seedTable = []struct {
	prompt string
	pos    int
	layer  int
	mae    float64
	first  bool
}{
	{"p6_len_16", 826, 0, 0.142, true},
	{"p6_len_16", 826, 1, 0.138, false},
	{"p6_len_16", 826, 2, 0.141, false},
	{"p6_len_32", 1652, 0, 0.201, true},
}

// The seed's sample hash (65 hex digits, as printed in the seed report) is the candidate's
// at the first failure; the baseline's differs.
const (
	seedSampleHash   = "sha256:3a7b2c1d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2"
	seedBaselineHash = "sha256:9f00e1aa5d2b7c43e8a1f0b6c9d2e7a4b3c8f1d0e5a6b7c2d9e4f3a0b1c8d7e6"
)

const rawRowLen = 256

// seedKeys lists the traced keys of the two seed prompts: embed_out and residual_pre_attn
// of layers 0-2 at an early position and the last two (p6_len_32 traces its last position
// in layer 0 only).
func seedKeys(prompt string) []Key {
	last := map[string]int{"p6_len_16": 826, "p6_len_32": 1652}[prompt]
	var keys []Key
	for _, pos := range []int{0, last - 1, last} {
		keys = append(keys, Key{prompt, pos, -1, "embed_out"})
	}
	for layer := 0; layer < 3; layer++ {
		for _, pos := range []int{0, last - 1, last} {
			if prompt == "p6_len_32" && pos == last && layer > 0 {
				continue
			}
			keys = append(keys, Key{prompt, pos, layer, "residual_pre_attn"})
		}
	}
	return keys
}

// seedFailure returns the MAE the candidate is built to at k, or 0 when it matches.
func seedFailure(k Key) float64 {
	for _, row := range seedTable {
		if k == (Key{row.prompt, row.pos, row.layer, "residual_pre_attn"}) {
			return row.mae
		}
	}
	return 0
}

// seedRecord returns a record in exactly the seed's sample format (no extensions).
func seedRecord(k Key, side string) Record {
	last := map[string]int{"p6_len_16": 826, "p6_len_32": 1652}[k.PromptID]
	r := Record{
		PromptID: k.PromptID, TokenID: 1000 + k.PosID%7919, PosID: k.PosID, LogicalTokIdx: k.PosID,
		Phase: PhasePrefill, Layer: k.Layer, TensorName: k.TensorName, Route: "prefill_main",
		Timestamp: "2026-02-06T15:14:13Z", GitCommitHash: "aad424dca7ef7f4e9142a5d4df23168bb1d087f2",
		Hash: fakeHash(k.String()), NZCount: 4096,
	}
	if k.PosID == last {
		// The seed sample's quirks: token_id equal to pos_id, logical_tok_idx 5, a decode
		// route on a prefill_last record.
		r.TokenID, r.LogicalTokIdx, r.Phase, r.Route = k.PosID, 5, PhasePrefillLast, "decode_attention_main"
	}
	if side == "baseline" {
		r.Timestamp, r.GitCommitHash = "1770390853", "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e"
	}
	if seedFailure(k) != 0 && side == "candidate" {
		r.Hash = fakeHash("diverged " + k.String())
		if k == (Key{"p6_len_16", 826, 0, "residual_pre_attn"}) {
			r.Hash = seedSampleHash
		}
	}
	if seedFailure(k) != 0 && side == "baseline" && k.Layer == 0 && k.PromptID == "p6_len_16" {
		r.Hash = seedBaselineHash
	}
	return r
}

// rawRows returns the baseline and candidate rows of the raw pair at k: a baseline of RMS
// 0.458 (so that MAE 0.142 is rel_l2 0.31, the seed's figures) and a candidate that differs
// by exactly the table's MAE in every element, with alternating sign.
func rawRows(k Key) (base, cand []float32) {
	rng := rand.New(rand.NewPCG(uint64(k.PosID), uint64(k.Layer+2)))
	v := make([]float64, rawRowLen)
	var ss float64
	for i := range v {
		v[i] = 2*rng.Float64() - 1
		ss += v[i] * v[i]
	}
	scale := 0.458 / math.Sqrt(ss/rawRowLen)
	mae := seedFailure(k)
	base, cand = make([]float32, rawRowLen), make([]float32, rawRowLen)
	for i := range v {
		base[i] = float32(v[i] * scale)
		d := mae
		if i%2 == 1 {
			d = -mae
		}
		cand[i] = float32(float64(base[i]) + d)
	}
	return base, cand
}

// writeSeedPairs writes both pairs under dir: seed/ (pure seed format) and seed_raw/ (with
// shape, dtype, sketch and .npy raw tensors).
func writeSeedPairs(t *testing.T, dir string) {
	t.Helper()
	for _, side := range []string{"baseline", "candidate"} {
		for _, prompt := range []string{"p6_len_16", "p6_len_32"} {
			var plain, raw []Record
			for _, k := range seedKeys(prompt) {
				r := seedRecord(k, side)
				plain = append(plain, r)
				base, cand := rawRows(k)
				row := base
				if side == "candidate" {
					row = cand
				}
				r.Hash, r.NZCount = HashRow(row), NonZero(row)
				r.Shape, r.DType, r.Sketch = []int{rawRowLen}, "f32", NewSketch(row)
				r.RawFile = fmt.Sprintf("raw/%s_%s_l%d_p%d.npy", k.PromptID, k.TensorName, k.Layer, k.PosID)
				raw = append(raw, r)
				npy := filepath.Join(dir, "seed_raw", side, r.RawFile)
				mustMkdir(t, filepath.Dir(npy))
				if err := WriteNpyFile(npy, nil, row); err != nil {
					t.Fatal(err)
				}
			}
			for name, recs := range map[string][]Record{"seed": plain, "seed_raw": raw} {
				d := filepath.Join(dir, name, side)
				mustMkdir(t, d)
				path := TracePath(d, prompt)
				if err := WriteTrace(path, recs); err != nil {
					t.Fatal(err)
				}
				if name == "seed" && side == "baseline" {
					numericTimestamps(t, path)
				}
			}
		}
	}
}

// fakeHash returns a hash-shaped string for a pure seed-format record, which carries no row.
func fakeHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return HashPrefix + hex.EncodeToString(sum[:])
}

// numericTimestamps rewrites the baseline's timestamps as JSON numbers (Unix seconds), a
// form other engines write and the reader accepts.
func numericTimestamps(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.ReplaceAll(b, []byte(`"timestamp":"1770390853"`), []byte(`"timestamp":1770390853`))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// TestSeedTestdataUpToDate regenerates the seed trace pairs and checks that the committed
// files are exactly what the generator writes (go test ./golden -run SeedTestdata -update
// rewrites them).
func TestSeedTestdataUpToDate(t *testing.T) {
	if testutil.Update() {
		for _, name := range []string{"seed", "seed_raw"} {
			if err := os.RemoveAll(filepath.Join("testdata", name)); err != nil {
				t.Fatal(err)
			}
		}
		writeSeedPairs(t, "testdata")
		return
	}
	tmp := t.TempDir()
	writeSeedPairs(t, tmp)
	n := 0
	err := filepath.WalkDir(tmp, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(tmp, path)
		want, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		got, err := os.ReadFile(filepath.Join("testdata", rel))
		if err != nil {
			t.Errorf("%v (record with: go test ./golden -run SeedTestdata -update)", err)
			return nil
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/%s differs from what the generator writes (record with: go test ./golden -run SeedTestdata -update)", rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("the generator wrote no files")
	}
}

// seedRow is one row of a first-failure table as the Markdown report prints it.
type seedRow struct {
	Prompt, Tensor, HashMatch, MAE, First string
	Pos, Layer                            int
}

func firstFailureTable(r *Report) []seedRow {
	var rows []seedRow
	for _, p := range r.Prompts {
		for i := range p.Failures {
			f := &p.Failures[i]
			rows = append(rows, seedRow{f.PromptID, f.TensorName, yesNo(f.HashMatch), f.maeText(), yesNo(f.FirstFail), f.PosID, f.Layer})
		}
	}
	return rows
}

// TestSeedPairs reads the committed seed-format trace folders and checks that they give the
// seed's first-failure table for p6_len_16 at position 826 (and p6_len_32 at 1652).
func TestSeedPairs(t *testing.T) {
	tests := []struct {
		dir     string
		policy  Policy
		withMAE bool
	}{
		{"seed", Exact, false},
		{"seed", Tolerance, false},
		{"seed_raw", Exact, true},
		{"seed_raw", Tolerance, true},
	}
	for _, tc := range tests {
		t.Run(tc.dir+"/"+tc.policy.Name, func(t *testing.T) {
			rep := compareDirs(t, filepath.Join("testdata", tc.dir, "candidate"), filepath.Join("testdata", tc.dir, "baseline"), tc.policy)
			var want []seedRow
			for _, row := range seedTable {
				mae := "n/a"
				if tc.withMAE {
					mae = formatNum(row.mae)
				}
				want = append(want, seedRow{row.prompt, "residual_pre_attn", "NO", mae, yesNo(row.first), row.pos, row.layer})
			}
			if diff := cmp.Diff(want, firstFailureTable(rep)); diff != "" {
				t.Errorf("first-failure table (-want +got):\n%s", diff)
			}
			for _, p := range rep.Prompts {
				if p.Status != StatusDiverged || p.Missing() != 0 {
					t.Errorf("%s: status %s with %d missing, want diverged with 0 missing", p.PromptID, p.Status, p.Missing())
				}
			}
			if got := rep.CategoryCounts()[0]; got != 2 {
				t.Errorf("ROUTING/SELECTION first failures = %d, want 2", got)
			}
			wantNotes := 0
			if tc.policy.Tolerance && !tc.withMAE {
				wantNotes = 1 // the fallback to exact is said once
			}
			if len(rep.Notes) != wantNotes {
				t.Errorf("notes = %q, want %d", rep.Notes, wantNotes)
			}
		})
	}
}

func TestSeedRawExactSizes(t *testing.T) {
	rep := compareDirs(t, "testdata/seed_raw/candidate", "testdata/seed_raw/baseline", Exact)
	f := rep.Prompts[0].FirstFail
	if f == nil || f.Diff == nil || !f.Diff.Exact {
		t.Fatalf("p6_len_16 first failure %+v: want an exact size from the raw tensors", f)
	}
	if math.Abs(f.Diff.MAE-0.142) > 1e-6 || math.Abs(f.Diff.RelL2-0.31) > 0.001 {
		t.Errorf("p6_len_16 first failure MAE %v rel_l2 %v, want 0.142 and 0.31", f.Diff.MAE, f.Diff.RelL2)
	}
	// Without the raw files the sketches estimate the same sizes within 1.5x.
	cand, base := readDir(t, "testdata/seed_raw/candidate"), readDir(t, "testdata/seed_raw/baseline")
	for _, tr := range append(cand, base...) {
		tr.Path = ""
	}
	est, err := Compare(cand, base, Exact)
	if err != nil {
		t.Fatal(err)
	}
	g := est.Prompts[0].FirstFail
	if g.Diff == nil || g.Diff.Exact || !within(g.Diff.MAE, f.Diff.MAE, 1.5) || !within(g.Diff.RelL2, f.Diff.RelL2, 1.5) {
		t.Errorf("sketch estimate %+v, want within 1.5x of the exact %+v", g.Diff, f.Diff)
	}
}

func readDir(t *testing.T, dir string) []*Trace {
	t.Helper()
	tr, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func compareDirs(t *testing.T, cand, base string, p Policy) *Report {
	t.Helper()
	rep, err := Compare(readDir(t, cand), readDir(t, base), p)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}
