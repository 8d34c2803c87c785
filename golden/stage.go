// Package golden is the engine-agnostic trace model: the stage table, root-cause categories,
// trace records and their JSONL files, comparison policies, FIRST_FAIL and reports.
package golden

// Category is a root-cause bucket. The FIRST_FAIL stage decides it through the stage table.
type Category string

// The seven categories of the seed's bisect method.
const (
	RoutingSelection   Category = "ROUTING/SELECTION"
	AttnKernelInputs   Category = "ATTN_KERNEL_INPUTS"
	AttentionMechanism Category = "ATTENTION_MECHANISM"
	ResidualAdd        Category = "RESIDUAL_ADD"
	FFNNormPath        Category = "FFN_NORM_PATH"
	MLPOutput          Category = "MLP_OUTPUT"
	Unknown            Category = "UNKNOWN"
)

// Categories lists every category in report order (UNKNOWN last).
var Categories = []Category{
	RoutingSelection, AttnKernelInputs, AttentionMechanism, ResidualAdd, FFNNormPath, MLPOutput, Unknown,
}

// Stage identifies a traced point of the residual stream. Its value is its causal position
// within a layer: engines, the comparison order, the classifier and the reports all read the
// table below and nothing else.
type Stage uint8

// The stages in causal order. V and AttnCtx extend the seed's 13: without them a bug in the
// value projection or in the output projection would land in the wrong category.
const (
	EmbedOut         Stage = iota // token embedding row (layer -1)
	ResidualPreAttn               // residual stream entering the layer
	AttnIn                        // RMSNorm output that feeds Q/K/V
	QPreRope                      // query projection
	KPreRope                      // key projection
	V                             // value projection
	QPostRope                     // query after RoPE
	KPostRope                     // key after RoPE (what enters the KV cache)
	AttnCtx                       // attention context (softmax(QK^T)V) before the output projection
	AttnOut                       // output projection of the context: the residual's addend
	ResidualPostAttn              // residual after the attention add
	FFNNormIn                     // RMSNorm output that feeds the MLP
	MLPOut                        // SwiGLU MLP output: the residual's second addend
	ResidualPostMLP               // residual leaving the layer
	Logits                        // output projection of the final norm (layer n_layer)
	NumStages        = iota
)

// StageInfo is one row of the stage table.
type StageInfo struct {
	Stage     Stage
	Name      string   // tensor_name in trace records
	Category  Category // root cause when this stage is the first to diverge
	Extension bool     // not among the seed's 13
	PerLayer  bool     // traced in every layer (false: embed_out before layer 0, logits after the last)
	// Role names, in words, the computation whose output the stage is: a crash "before
	// attn_in" is a crash in the attention RMSNorm.
	Role string
}

var stageTable = [NumStages]StageInfo{
	{EmbedOut, "embed_out", RoutingSelection, false, false, "the token embedding"},
	{ResidualPreAttn, "residual_pre_attn", RoutingSelection, false, true, "the residual stream entering the layer"},
	{AttnIn, "attn_in", AttnKernelInputs, false, true, "the attention RMSNorm"},
	{QPreRope, "q_pre_rope", AttnKernelInputs, false, true, "the query projection"},
	{KPreRope, "k_pre_rope", AttnKernelInputs, false, true, "the key projection"},
	{V, "v", AttnKernelInputs, true, true, "the value projection"},
	{QPostRope, "q_post_rope", AttentionMechanism, false, true, "RoPE on the queries"},
	{KPostRope, "k_post_rope", AttentionMechanism, false, true, "RoPE on the keys"},
	{AttnCtx, "attn_ctx", AttentionMechanism, true, true, "the attention softmax(QK^T)V"},
	{AttnOut, "attn_out", AttentionMechanism, false, true, "the attention output projection"},
	{ResidualPostAttn, "residual_post_attn", ResidualAdd, false, true, "the attention residual add"},
	{FFNNormIn, "ffn_norm_in", FFNNormPath, false, true, "the FFN RMSNorm"},
	{MLPOut, "mlp_out", MLPOutput, false, true, "the SwiGLU MLP"},
	{ResidualPostMLP, "residual_post_mlp", ResidualAdd, false, true, "the MLP residual add"},
	{Logits, "logits", Unknown, false, false, "the final RMSNorm and output projection"},
}

var stageByName = func() map[string]Stage {
	m := make(map[string]Stage, NumStages)
	for _, s := range stageTable {
		m[s.Name] = s.Stage
	}
	return m
}()

// Stages returns the stage table in causal order.
func Stages() []StageInfo { return stageTable[:] }

// Info returns the table row of s.
func (s Stage) Info() StageInfo { return stageTable[s] }

// String returns the stage's tensor_name.
func (s Stage) String() string {
	if int(s) >= NumStages {
		return "stage(?)"
	}
	return stageTable[s].Name
}

// Category returns the root-cause category of s.
func (s Stage) Category() Category { return stageTable[s].Category }

// StageByName looks a tensor_name up in the table.
func StageByName(name string) (Stage, bool) {
	s, ok := stageByName[name]
	return s, ok
}

// Classify returns the category of a tensor_name; a name outside the table is UNKNOWN.
func Classify(tensorName string) Category {
	if s, ok := stageByName[tensorName]; ok {
		return s.Category()
	}
	return Unknown
}

// LayerOf returns the layer number a record of stage s carries: -1 for embed_out, nLayer for
// logits, and the given layer for per-layer stages.
func LayerOf(s Stage, layer, nLayer int) int {
	switch s {
	case EmbedOut:
		return -1
	case Logits:
		return nLayer
	}
	return layer
}
