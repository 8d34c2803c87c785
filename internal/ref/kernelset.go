package ref

import "github.com/gretabisect/gretabisect/internal/model"

// kernels are the inner loops a forward pass calls, chosen when the engine is built: the
// reference's lane layout (dot, matmul: SIMD or portable, the same bits), or float64
// accumulation for the cpu-f64acc candidate. The forward pass is the same code for both.
type kernels struct {
	dot    func(a, b []float32) float32
	matmul func(w []float32, cols int, x []float32, nt int, y []float32, ys, r0, r1 int)
}

var refKernels = kernels{dot: dot, matmul: matmul}

// Proj names one of a layer's weight matrices.
type Proj int

// The projections of a layer, in the order the forward pass applies them.
const (
	ProjQ    Proj = iota // attn_q: attn_in -> q_pre_rope
	ProjK                // attn_k: attn_in -> k_pre_rope
	ProjV                // attn_v: attn_in -> v
	ProjO                // attn_output: attn_ctx -> attn_out
	ProjGate             // ffn_gate: ffn_norm_in -> gate
	ProjUp               // ffn_up: ffn_norm_in -> up
	ProjDown             // ffn_down: SwiGLU product -> mlp_out
)

// of returns p's matrix in L.
func (p Proj) of(L *model.Layer) *model.Matrix {
	switch p {
	case ProjQ:
		return &L.Wq
	case ProjK:
		return &L.Wk
	case ProjV:
		return &L.Wv
	case ProjO:
		return &L.Wo
	case ProjGate:
		return &L.WGate
	case ProjUp:
		return &L.WUp
	}
	return &L.WDown
}

// bias returns p's bias in L (attn_q/k/v.bias of qwen2), nil when the model has none.
func (p Proj) bias(L *model.Layer) []float32 {
	switch p {
	case ProjQ:
		return L.Bq
	case ProjK:
		return L.Bk
	case ProjV:
		return L.Bv
	}
	return nil
}
