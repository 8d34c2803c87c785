// Package engine is the interface every backend implements, the registry that picks one by
// name, and the driver that runs a prompt through an engine: prefill or token-by-token
// decode of the prompt, then greedy generation, with tracing.
package engine

import (
	"errors"

	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Engine runs one loaded model. It owns a KV cache of the model's context length.
type Engine interface {
	// Forward runs tokens at positions pos0..pos0+len(tokens)-1 in one batched pass, reading
	// and extending the KV cache, calls tap at every stage, and returns the logits of the last
	// position (valid until the next call). One token is the decode route.
	Forward(tokens []int32, pos0 int, tap *trace.Tap) ([]float32, error)
	// Reset empties the KV cache.
	Reset()
	// Device names where it runs, for golden file paths: "cpu", "hip-gfx942", "cuda-sm90".
	Device() string
	Close() error
}

// ErrNoDevice is wrapped by a backend that needs hardware this machine does not have (a GPU):
// tests skip on it instead of failing, so the rocm-tagged suite runs green on a laptop.
var ErrNoDevice = errors.New("no GPU device")

// Factory opens an engine for a model.
type Factory func(m *model.Model) (Engine, error)

// Varianter is implemented by engines whose arithmetic comes in builds that round
// differently (kernel variants): golden manifests record the variant, and goldens of one
// variant are not compared exactly with another's.
type Varianter interface {
	Variant() string
}

// Progressor is implemented by engines that run a long Forward call in steps (the CPU
// reference: chunks of prompt tokens). Run installs a callback that receives the number of
// positions done so far after each step, so a long prefill shows progress; nil removes it.
type Progressor interface {
	SetProgress(f func(done int))
}
