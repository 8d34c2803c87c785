package gretatest_test

import (
	"testing"

	"github.com/gretabisect/gretabisect/gretatest"
)

// TestB361 is the B3.61 suite: the three standard prompts on the model and backend of the
// environment (the embedded tiny model on the CPU reference by default), the default plan,
// compared with the committed goldens under golden/testdata/<device>/<model>/. With
// GRETA_INJECT set it fails naming the injected stage, layer, position and category.
func TestB361(t *testing.T) {
	gretatest.Bisect(t, gretatest.StandardPrompts(),
		gretatest.Layers(0, 1, 2, 4, 8), gretatest.Critical(826, 1652))
}
