// Package familytest runs the B3.61 suite on the embedded models of the Llama 3 and Qwen2
// families through gretatest's public API, in a test binary, and go test's time budget, of
// its own: the long prompts on tiny-qwen2 cost tens of seconds.
package familytest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/internal/model"
)

// familySpecs are the embedded models of the other families (EmbeddedSpecs lists tiny
// first): TestB361 runs the environment's model, tiny by default, TestB361Families these.
func familySpecs() []string { return model.EmbeddedSpecs()[1:] }

// TestB361Families is the B3.61 suite on the Llama 3 and Qwen2 models generated in memory
// (tiny-llama3, tiny-qwen2): the standard prompts, the default plan, compared with the
// committed goldens under golden/testdata/<device>/<model>/. It runs on gretatest's default
// backend (GRETA_BACKEND, else the CPU reference, or hip under -tags rocm: a device without
// goldens of its own is judged by layer replay against the CPU reference's). -short runs
// p0_short only: the long prompts cost seconds per family, minutes under -race.
func TestB361Families(t *testing.T) {
	ps := gretatest.StandardPrompts()
	if testing.Short() {
		ps = ps[:1]
	}
	for _, spec := range familySpecs() {
		t.Run(spec, func(t *testing.T) {
			gretatest.Bisect(t, ps, gretatest.Model(spec),
				gretatest.Layers(0, 1, 2, 4, 8), gretatest.Critical(826, 1652))
		})
	}
}

// TestStandardPromptsFamilies: the standard prompts have their lengths (5, 827 and 1653
// tokens) under every embedded vocabulary, so positions 826 and 1652 are the last ones of
// p6_len_16 and p6_len_32 for every family. BOS comes first exactly when the vocabulary adds
// it: Qwen2's does not, and its prompts are the text's first tokens.
func TestStandardPromptsFamilies(t *testing.T) {
	for _, spec := range model.EmbeddedSpecs() {
		m, err := model.Inspect(spec)
		if err != nil {
			t.Fatal(err)
		}
		v := m.Tokenizer.Vocab()
		var got []string
		for _, p := range gretatest.StandardPrompts() {
			toks, err := p.Tokens(m)
			if err != nil {
				t.Fatalf("%s: %v", spec, err)
			}
			got = append(got, fmt.Sprintf("%s %d bos=%v", p.ID, len(toks), toks[0] == v.BOS))
		}
		want := []string{"p0_short 5 bos=" + fmt.Sprint(v.AddBOS), "p6_len_16 827 bos=" + fmt.Sprint(v.AddBOS),
			"p6_len_32 1653 bos=" + fmt.Sprint(v.AddBOS)}
		if !slices.Equal(got, want) {
			t.Errorf("%s (add_bos %v): %v, want %v", spec, v.AddBOS, got, want)
		}
		if spec == "tiny-qwen2" && v.AddBOS {
			t.Errorf("%s adds BOS: Qwen2's vocabulary does not", spec)
		}
	}
}
