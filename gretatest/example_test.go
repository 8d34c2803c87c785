package gretatest_test

import (
	"testing"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest"
)

// A GPU engineer's test: the standard prompts on the default plan, compared with the golden
// traces, plus a custom prompt traced at every position of a few stages.
func ExampleBisect() {
	var t *testing.T // the test's t
	gretatest.Bisect(t, gretatest.StandardPrompts(),
		gretatest.Layers(0, 1, 2, 4, 8), gretatest.Critical(826, 1652))

	gretatest.Bisect(t, []gretatest.Prompt{gretatest.TextPrompt("hello", "Hello, world.")},
		gretatest.AllPositions(), gretatest.Stages(golden.KPostRope, golden.V, golden.AttnCtx),
		gretatest.Baseline()) // against a live CPU reference run: no golden file needed
}

// Rehearsing the localisation: the test fails naming k_post_rope, layer 3, position 826.
func ExampleInjectSpec() {
	var t *testing.T
	gretatest.Bisect(t, gretatest.StandardPrompts(),
		gretatest.InjectSpec("stage=k_post_rope,layer=3,pos>=826,scale=1.001"))
}
