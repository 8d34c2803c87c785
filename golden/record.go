package golden

import "encoding/json"

// Record is one traced tensor row: the seed's fields first, then extensions. The JSON names
// are an external contract (ARCHITECTURE.md section 4).
type Record struct {
	PromptID      string `json:"prompt_id"`
	TokenID       int    `json:"token_id"` // vocabulary id of the input token at PosID
	PosID         int    `json:"pos_id"`
	LogicalTokIdx int    `json:"logical_tok_idx"`
	Phase         string `json:"phase"` // prefill, prefill_last, decode
	Layer         int    `json:"layer"` // -1 for embed_out, n_layer for logits
	TensorName    string `json:"tensor_name"`
	Route         string `json:"route"`
	Timestamp     string `json:"timestamp"`       // volatile: never compared
	GitCommitHash string `json:"git_commit_hash"` // volatile: never compared
	Hash          string `json:"hash"`            // "sha256:<hex>" of the row's float32 little-endian bytes
	NZCount       int    `json:"nz_count"`
	Top5Tokens    []int  `json:"top5_tokens,omitempty"` // logits only

	// Extensions.
	Shape   []int   `json:"shape,omitempty"`
	DType   string  `json:"dtype,omitempty"`
	Sketch  *Sketch `json:"sketch,omitempty"`
	RawFile string  `json:"raw_file,omitempty"` // .npy beside the trace file, relative to it

	// Extra keeps fields this version does not know, so a read/write round trip loses nothing.
	Extra map[string]json.RawMessage `json:"-"`
}

// Phases of a record.
const (
	PhasePrefill     = "prefill"
	PhasePrefillLast = "prefill_last"
	PhaseDecode      = "decode"
)

// Routes: which computation produced a record.
const (
	RoutePrefill = "prefill" // all prompt positions in one batched pass
	RouteDecode  = "decode"  // one token at a time through the KV cache
)
