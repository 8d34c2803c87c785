package myengine

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest"
)

// short is the first standard prompt: 5 tokens, every position traced.
func short() []gretatest.Prompt { return gretatest.StandardPrompts()[:1] }

func factory(t *testing.T, bugs string) gretatest.Option {
	t.Helper()
	f, err := New(bugs)
	if err != nil {
		t.Fatal(err)
	}
	return gretatest.Engine("myengine", f)
}

// TestSuite runs the first B3.61 prompt through this module's engine against this module's
// goldens (testdata/golden/cpu/tiny/, recorded with go test -update).
func TestSuite(t *testing.T) {
	gretatest.Bisect(t, short(), factory(t, ""), gretatest.GoldenDir("testdata/golden"))
}

// recorder is a gretatest.TB that keeps the failures, so the test can check what a bisect of
// the buggy engine reports instead of failing with it.
type recorder struct {
	testing.TB
	errors []string
}

func (r *recorder) Errorf(format string, args ...any) {
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

// TestPlantedBugIsLocalised plants a 1% error in layer 3's attention context from position 2
// on: layer 3 is not traced by the default plan, so the first traced failure is a later
// symptom, and self-bisection must name the planted stage, layer, position and category.
func TestPlantedBugIsLocalised(t *testing.T) {
	r := &recorder{TB: t}
	rep := gretatest.Bisect(r, short(), factory(t, "stage=attn_ctx,layer=3,pos>=2,scale=1.01"),
		gretatest.GoldenDir("testdata/golden"), gretatest.Update(false)) // compares even under -update
	want := "p0_short: FIRST_FAIL pos=2 layer=3 tensor=attn_ctx category=ATTENTION_MECHANISM"
	if len(r.errors) != 1 || !strings.HasPrefix(r.errors[0], want) {
		t.Fatalf("bisect reported %q, want one failure starting %q", r.errors, want)
	}
	pr := rep.Prompts[0]
	if pr.FirstTraced == nil || pr.FirstTraced.Layer == 3 || pr.Origin == nil || pr.Origin.LayerRuns == 0 {
		t.Errorf("first traced %+v, origin %+v: want a later traced symptom bisected down to layer 3", pr.FirstTraced, pr.Origin)
	}
	t.Logf("%s", strings.SplitN(r.errors[0], "\n", 2)[0])
}

func TestBadBug(t *testing.T) {
	if _, err := New("stage=nope"); err == nil || !strings.Contains(err.Error(), `unknown stage "nope"`) {
		t.Errorf("New(bad spec) = %v", err)
	}
}
