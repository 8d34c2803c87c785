package golden

import (
	"cmp"
	"fmt"
	"slices"
	"sort"
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

// RouteOrder is the order in which an engine computes the records of a prompt of nPrompt
// tokens on route (RoutePrefill, RouteDecode; "" is RoutePrefill): CausalOrder of the
// generated tokens on the prefill route, and on the decode route, where every position is a
// step of its own, CausalOrder(0).
func RouteOrder(route string, nPrompt int) func(a, b Key) int {
	if route == RouteDecode {
		return CausalOrder(0)
	}
	return CausalOrder(nPrompt)
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

// causalKey is a key's place in the causal order, computed once per key: the decode step;
// the group (embed_out, the layers, logits, stage names outside the table last); the layer
// and the stage's table index within the layers group; then position and layer. Keys of
// unknown stages sort by name (set only for them), then layer.
type causalKey struct {
	step, group, layer, stage, pos, rawLayer int
	name                                     string
}

func causalKeyOf(k Key, decodeStart int) causalKey {
	c := causalKey{step: decodeStep(k.PosID, decodeStart), pos: k.PosID, rawLayer: k.Layer}
	st, ok := StageByName(k.TensorName)
	switch {
	case !ok:
		c.group, c.name = 3, k.TensorName
	case st == EmbedOut:
		c.group = 0
	case st == Logits:
		c.group = 2
	default:
		c.group, c.layer, c.stage = 1, k.Layer, int(st)
	}
	return c
}

func (a *causalKey) compare(b *causalKey) int {
	if c := cmp.Compare(a.step, b.step); c != 0 {
		return c
	}
	if c := cmp.Compare(a.group, b.group); c != 0 {
		return c
	}
	if c := cmp.Compare(a.layer, b.layer); c != 0 {
		return c
	}
	if c := cmp.Compare(a.stage, b.stage); c != 0 {
		return c
	}
	if a.group == 3 {
		if c := cmp.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := cmp.Compare(a.rawLayer, b.rawLayer); c != 0 {
			return c
		}
	}
	if c := cmp.Compare(a.pos, b.pos); c != 0 {
		return c
	}
	return cmp.Compare(a.rawLayer, b.rawLayer) // embed_out or logits written with odd layer numbers
}

func causalCompare(a, b Key, decodeStart int) int {
	ka, kb := causalKeyOf(a, decodeStart), causalKeyOf(b, decodeStart)
	return ka.compare(&kb)
}

// SortCausal sorts the records of one prompt, stably, in CausalCompare's order. Each key's
// place is computed once, and only the part from the first record out of order on is
// sorted: records come from engines mostly in order.
func SortCausal(recs []Record) {
	keys := make([]causalKey, len(recs))
	first := len(recs) // the first record out of order
	for i := range recs {
		keys[i] = causalKeyOf(KeyOf(recs[i]), -1)
		if i > 0 && first == len(recs) && keys[i-1].compare(&keys[i]) > 0 {
			first = i
		}
	}
	if first == len(recs) {
		return
	}
	// The in-order prefix keeps the records that no later record precedes.
	least := first
	for i := first + 1; i < len(recs); i++ {
		if keys[i].compare(&keys[least]) < 0 {
			least = i
		}
	}
	from := sort.Search(first, func(i int) bool { return keys[i].compare(&keys[least]) > 0 })
	idx := make([]int, len(recs)-from)
	for i := range idx {
		idx[i] = from + i
	}
	// Stable through the tie-break on the index.
	slices.SortFunc(idx, func(a, b int) int {
		if c := keys[a].compare(&keys[b]); c != 0 {
			return c
		}
		return cmp.Compare(a, b)
	})
	out := make([]Record, len(idx))
	for i, j := range idx {
		out[i] = recs[j]
	}
	copy(recs[from:], out)
}
