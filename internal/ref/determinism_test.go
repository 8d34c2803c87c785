package ref

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/sebdah/goldie/v2"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// TestDeterminism traces every stage of every layer at every position, on both routes, for
// the tiny model (p0_short and a 64-token prompt), the embedded models of the other families
// (tiny-llama3 and tiny-qwen2: p0_short, with their own tokenizers, BOS rule and RoPE), a
// random model with odd dimensions, and
// random models of the other families (qwen2 with Qwen2.5-0.5B's heads; llama with RoPE
// frequency factors, linear scaling and tied output), on the reference and on the
// cpu-f64acc candidate, under GOMAXPROCS 1, 2 and 8. Every run must give the same records, and their
// digest must equal testdata/determinism.golden (recorded with -update). The same test run
// under qemu for arm64, or with GOEXPERIMENT=simd, proves the hashes do not depend on the
// architecture or the kernel:
//
//	GOARCH=arm64 go test -exec qemu-aarch64-static -run TestDeterminism ./internal/ref
//	GOEXPERIMENT=simd go test -run TestDeterminism ./internal/ref
//
// With -short each case runs once (GOMAXPROCS 2) and only the digest is checked; under the
// race detector only the random llama runs, under every GOMAXPROCS, without the digest.
func TestDeterminism(t *testing.T) {
	embedded := func(spec string) (*model.Model, prompts.Prompt) {
		m, err := model.Open(spec)
		if err != nil {
			t.Fatal(err)
		}
		short, err := prompts.Standard(prompts.P0Short, m.Tokenizer)
		if err != nil {
			t.Fatal(err)
		}
		return m, short
	}
	tiny, short := embedded(model.TinySpec)
	type testCase struct {
		name   string
		m      *model.Model
		prompt prompts.Prompt
		newE   func(*engine.Model) (*Engine, error)
	}
	cases := []testCase{
		{"tiny", tiny, short, New},
		{"tiny", tiny, prompts.Prompt{ID: "random64", Tokens: randomTokens(64, tiny.Config.Vocab, 5)}, New},
		{"random", randomModel(testConfig, 7), prompts.Prompt{ID: "random70", Tokens: randomTokens(70, testConfig.Vocab, 8)}, New},
		{"qwen2", randomModel(qwenConfig, 9), prompts.Prompt{ID: "random70", Tokens: randomTokens(70, qwenConfig.Vocab, 10)}, New},
		{"llama3", randomModel(llama3Config, 11), prompts.Prompt{ID: "random70", Tokens: randomTokens(70, llama3Config.Vocab, 12)}, New},
		// The candidate backend is as deterministic as the reference.
		{"tiny/" + F64AccName, tiny, short, NewF64Acc},
		{"random/" + F64AccName, randomModel(testConfig, 7), prompts.Prompt{ID: "random70", Tokens: randomTokens(70, testConfig.Vocab, 8)}, NewF64Acc},
	}
	if raceEnabled {
		cases = cases[2:3] // the race detector checks the worker pool and recorder, not the digest
	} else {
		// The families' p0_short only: under qemu every position of tiny-qwen2 costs seconds.
		for _, spec := range model.EmbeddedSpecs()[1:] {
			m, p := embedded(spec)
			cases = append(cases, testCase{spec, m, p, New})
		}
	}
	plan := trace.Plan{AllLayers: true, AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: 5}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	var digest strings.Builder
	fmt.Fprintf(&digest, "# %s: sha256 of the records (key and hash, causal order) and the generated tokens\n", t.Name())
	for _, c := range cases {
		for _, route := range []string{golden.RoutePrefill, golden.RouteDecode} {
			first := ""
			procsList := []int{1, 2, 8}
			if testing.Short() && !raceEnabled {
				procsList = procsList[1:2] // the digest alone: qemu runs stay short
			}
			for _, procs := range procsList {
				runtime.GOMAXPROCS(procs)
				got := traceDigest(t, c.newE, c.m, c.prompt, route, plan)
				if first == "" {
					first = got
					fmt.Fprintf(&digest, "%s %s %s %s\n", c.name, c.prompt.ID, route, got)
				} else if got != first {
					t.Errorf("%s %s %s: GOMAXPROCS=%d gives %s, the first run %s", c.name, c.prompt.ID, route, procs, got, first)
				}
			}
		}
	}
	if raceEnabled {
		return
	}
	g := goldie.New(t, goldie.WithFixtureDir("testdata"), goldie.WithNameSuffix(".golden"))
	g.Assert(t, "determinism", []byte(digest.String()))
}

// traceDigest runs one traced prompt on a fresh engine and digests the result.
func traceDigest(t *testing.T, newE func(*engine.Model) (*Engine, error), m *model.Model, p prompts.Prompt, route string,
	plan trace.Plan) string {
	t.Helper()
	e, err := newE(&m.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	res, err := driver.Run(e, m, driver.Request{PromptID: p.ID, Tokens: p.Tokens, Plan: plan, Route: route})
	if err != nil {
		t.Fatal(err)
	}
	want := (len(p.Tokens) + plan.MaxNewTokens) * ((golden.NumStages-2)*m.Config.NLayer + 2)
	if len(res.Records) != want {
		t.Fatalf("%s %s: %d records, want %d", p.ID, route, len(res.Records), want)
	}
	h := sha256.New()
	for _, r := range res.Records {
		fmt.Fprintf(h, "%s %s\n", golden.KeyOf(r), r.Hash)
	}
	fmt.Fprintf(h, "generated %v\n", res.Generated)
	return hex.EncodeToString(h.Sum(nil))
}
