package golden

import (
	"cmp"
	"fmt"
)

// Key identifies a record within a set of traces: records of two traces are matched on it.
type Key struct {
	PromptID   string
	PosID      int
	Layer      int
	TensorName string
}

// KeyOf returns rec's key.
func KeyOf(rec Record) Key { return Key{rec.PromptID, rec.PosID, rec.Layer, rec.TensorName} }

func (k Key) String() string {
	return fmt.Sprintf("(prompt_id=%s pos_id=%d layer=%d tensor_name=%s)", k.PromptID, k.PosID, k.Layer, k.TensorName)
}

// causalRank orders keys of one prompt causally: embed_out first; then per layer ascending,
// stages in table order; logits after every layer; stage names outside the table last.
// Positions ascend within a (layer, stage).
func causalRank(k Key) (group, layer, stage int) {
	st, ok := StageByName(k.TensorName)
	switch {
	case !ok:
		return 3, 0, 0
	case st == EmbedOut:
		return 0, 0, 0
	case st == Logits:
		return 2, 0, 0
	}
	return 1, k.Layer, int(st)
}

// CausalCompare orders two keys of the same prompt in causal order (negative when a comes
// first). Keys of unknown stages sort by name, then layer. It treats every position as part
// of one batched pass; CausalOrder also knows where generation starts.
func CausalCompare(a, b Key) int { return causalCompare(a, b, -1) }

// CausalOrder returns the causal order of a prompt whose generated (decode) tokens start at
// position decodeStart (-1: none). The prompt is one batched pass in the order of
// CausalCompare; each decode step runs after everything before it, because its input token
// is chosen from the previous step's logits. Without the steps, a generated token that
// changed because of an earlier fault would sort first (its embed_out precedes every layer)
// and hide the origin.
func CausalOrder(decodeStart int) func(a, b Key) int {
	return func(a, b Key) int { return causalCompare(a, b, decodeStart) }
}

// DecodeStart returns the first position of recs whose phase is decode, or -1.
func DecodeStart(recs []Record) int {
	start := -1
	for i := range recs {
		if recs[i].Phase == PhaseDecode && (start < 0 || recs[i].PosID < start) {
			start = recs[i].PosID
		}
	}
	return start
}

func decodeStep(pos, decodeStart int) int {
	if decodeStart < 0 || pos < decodeStart {
		return 0
	}
	return pos - decodeStart + 1
}

func causalCompare(a, b Key, decodeStart int) int {
	if c := cmp.Compare(decodeStep(a.PosID, decodeStart), decodeStep(b.PosID, decodeStart)); c != 0 {
		return c
	}
	ga, la, sa := causalRank(a)
	gb, lb, sb := causalRank(b)
	if c := cmp.Compare(ga, gb); c != 0 {
		return c
	}
	if c := cmp.Compare(la, lb); c != 0 {
		return c
	}
	if c := cmp.Compare(sa, sb); c != 0 {
		return c
	}
	if ga == 3 {
		if c := cmp.Compare(a.TensorName, b.TensorName); c != 0 {
			return c
		}
		if c := cmp.Compare(a.Layer, b.Layer); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.PosID, b.PosID); c != 0 {
		return c
	}
	return cmp.Compare(a.Layer, b.Layer) // embed_out or logits written with odd layer numbers
}
