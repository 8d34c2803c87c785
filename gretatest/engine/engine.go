package engine

import "errors"

// Engine runs one loaded model. It owns a KV cache of the model's context length.
type Engine interface {
	// Forward runs tokens at positions pos0..pos0+len(tokens)-1 in one batched pass, reading
	// and extending the KV cache, calls tap at every stage, and returns the logits of the last
	// position (valid until the next call). One token is the decode route.
	Forward(tokens []int32, pos0 int, tap *Tap) ([]float32, error)
	// Reset empties the KV cache.
	Reset()
	// Device names where it runs, for golden file paths: "cpu", "hip-gfx942", "cuda-sm90".
	Device() string
	Close() error
}

// Replayer is implemented by in-process engines that can run a range of layers from given
// residual-stream rows instead of from tokens: layer replay. Replaying a layer on a
// reference's input rows and comparing its output rows with the reference's separates the
// layer's own error from the error it inherited from the layers below. An engine that cannot
// replay (an external one) simply does not implement it.
type Replayer interface {
	Engine
	// Replay runs layers lo..hi (0 <= lo <= hi <= n_layer) for the n positions
	// pos0..pos0+n-1, starting from rows (n, dim), the residual stream entering layer lo:
	// residual_pre_attn of layer lo, or for lo = n_layer the residual leaving the last layer.
	// hi = n_layer adds the final norm and the output projection, whose rows are the logits.
	//
	// The call computes its positions as Forward would compute n tokens at pos0: in the
	// engine's own batched passes, and one row is a decode step. To reproduce a run's routes,
	// replay the prompt in one call and each generated position in a call of its own.
	//
	// The KV caches of layers lo..hi are written at positions pos0..pos0+n-1 and read at
	// positions 0..pos0+n-1, so earlier calls (Replay or Forward) must have filled positions
	// before pos0 of those layers. The caches of other layers are not touched. After a
	// replay the cache no longer holds one token sequence: Reset before the next Forward.
	//
	// tap sees the stages of layers lo..hi as in Forward, its faults applied the same way
	// (residual_pre_attn of layer lo included, on the engine's copy of rows: rows is only
	// read, and not kept after the call). embed_out is never traced; logits only when
	// hi = n_layer, and only for the positions the tap plans.
	Replay(lo, hi, pos0 int, rows []float32, tap *Tap) error
}

// ErrNoDevice is wrapped by a backend that needs hardware this machine does not have (a GPU):
// tests skip on it instead of failing, so the rocm-tagged suite runs green on a laptop.
var ErrNoDevice = errors.New("no GPU device")

// Factory opens an engine for a model.
type Factory func(m *Model) (Engine, error)

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
