// Package engine is the interface every backend implements, the registry that picks one by
// name, and the driver that runs a prompt through an engine: prefill or token-by-token
// decode of the prompt, then greedy generation, with tracing.
package engine

import (
	"errors"
	"fmt"

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
	Replay(lo, hi, pos0 int, rows []float32, tap *trace.Tap) error
}

// CheckReplay returns the error a Replayer gives for arguments outside its model's shape:
// each backend calls it first, so they refuse bad calls in the same words.
func CheckReplay(c model.Config, lo, hi, pos0, nRows int) error {
	switch {
	case lo < 0 || hi < lo || hi > c.NLayer:
		return fmt.Errorf("replay of layers %d..%d: want 0 <= lo <= hi <= %d (n_layer)", lo, hi, c.NLayer)
	case nRows == 0:
		return fmt.Errorf("replay of layers %d..%d: no rows", lo, hi)
	case nRows%c.Dim != 0:
		return fmt.Errorf("replay of layers %d..%d: %d values are not whole rows of %d", lo, hi, nRows, c.Dim)
	case pos0 < 0 || pos0+nRows/c.Dim > c.CtxLen:
		return fmt.Errorf("replay of layers %d..%d: positions %d..%d outside the context length %d",
			lo, hi, pos0, pos0+nRows/c.Dim-1, c.CtxLen)
	}
	return nil
}

// Span is the work of one Forward or Replay call, for backends: positions Pos0..Pos0+N-1
// through layers Lo..Hi, from Tokens (embedded: Lo = 0) or from Rows (N, dim), the residual
// stream entering layer Lo. Hi = n_layer adds the final norm and the logits.
type Span struct {
	Tokens   []int32
	Rows     []float32
	Pos0, N  int
	Lo, Hi   int
	WantLast bool // the last position's logits are returned (Forward)
}

// Part returns positions Pos0+off..Pos0+off+n-1 of s, rows of width dim: one of a backend's
// chunks or passes. Only the part that ends s wants the last logits.
func (s Span) Part(off, n, dim int) Span {
	p := s
	p.Pos0, p.N, p.WantLast = s.Pos0+off, n, s.WantLast && off+n == s.N
	if s.Tokens != nil {
		p.Tokens = s.Tokens[off : off+n]
	} else {
		p.Rows = s.Rows[off*dim : (off+n)*dim]
	}
	return p
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
