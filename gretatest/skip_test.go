package gretatest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest/engine"
)

func init() {
	engine.Register("nogpu", func(*engine.Model) (engine.Engine, error) {
		return nil, fmt.Errorf("hip: %w: 0 devices visible", engine.ErrNoDevice)
	})
}

// A GPU backend on a machine without a GPU skips the test with the reason instead of failing
// it, so `go test -tags rocm ./...` is green on a laptop or CI runner.
func TestNoDeviceSkips(t *testing.T) {
	var skipped bool
	t.Run("bisect", func(t *testing.T) {
		defer func() { skipped = t.Skipped() }()
		opts := append(toyGoldenOptions(t, t.TempDir()), Backend("nogpu"))
		Bisect(t, []Prompt{toyPrompt()}, opts...)
	})
	if !skipped {
		t.Error("Bisect on a backend without a device did not skip")
	}

	// A TB that cannot skip hears why in its log and sees no error.
	tb := &fakeTB{name: "TestNoDeviceSkips"}
	Bisect(tb, []Prompt{toyPrompt()}, append(toyGoldenOptions(t, t.TempDir()), Backend("nogpu"))...)
	if len(tb.errors) != 0 {
		t.Errorf("errors %q, want none", tb.errors)
	}
	if len(tb.logs) != 1 || !strings.Contains(tb.logs[0], "no GPU device: 0 devices visible") {
		t.Errorf("logs %q, want the reason", tb.logs)
	}
}
