package engine

import (
	"slices"

	"github.com/gretabisect/gretabisect/golden"
)

// Selection is a resolved plan: exactly which (stage, layer, position) rows to record for one
// prompt on one model. Layer indices are model layers; embed_out and logits ignore the layer.
type Selection struct {
	stages    [golden.NumStages]bool
	layers    []bool // by model layer
	positions []bool // by position
}

// NewSelection builds a selection from explicit sets. Out-of-range layers and positions are
// ignored: a plan written for a deeper model or a longer prompt simply records less.
func NewSelection(stages []golden.Stage, layers []int, nLayer int, positions []int, nPos int) *Selection {
	s := &Selection{layers: make([]bool, nLayer), positions: make([]bool, nPos)}
	for _, st := range stages {
		s.stages[st] = true
	}
	for _, l := range layers {
		if l >= 0 && l < nLayer {
			s.layers[l] = true
		}
	}
	for _, p := range positions {
		if p >= 0 && p < nPos {
			s.positions[p] = true
		}
	}
	return s
}

// Want reports whether the row of stage st at (layer, pos) is selected.
func (s *Selection) Want(st golden.Stage, layer, pos int) bool {
	if !s.stages[st] || pos < 0 || pos >= len(s.positions) || !s.positions[pos] {
		return false
	}
	return !st.Info().PerLayer || (layer >= 0 && layer < len(s.layers) && s.layers[layer])
}

// WantAny reports whether any row of stage st at layer is selected.
func (s *Selection) WantAny(st golden.Stage, layer int) bool {
	if !s.stages[st] {
		return false
	}
	return !st.Info().PerLayer || (layer >= 0 && layer < len(s.layers) && s.layers[layer])
}

// Layers returns the selected layers in ascending order.
func (s *Selection) Layers() []int { return indices(s.layers) }

// Positions returns the selected positions in ascending order.
func (s *Selection) Positions() []int { return indices(s.positions) }

// Stages returns the selected stages in causal order.
func (s *Selection) Stages() []golden.Stage {
	var out []golden.Stage
	for i, on := range s.stages {
		if on {
			out = append(out, golden.Stage(i))
		}
	}
	return out
}

func indices(b []bool) []int {
	var out []int
	for i, on := range b {
		if on {
			out = append(out, i)
		}
	}
	return out
}

// Keys lists the keys of the selected rows of prompt promptID in order (the order an engine
// computes them: golden.RouteOrder). What a run wrote is measured against it
// (golden.Crash.Locate).
func (s *Selection) Keys(promptID string, order func(a, b golden.Key) int) []golden.Key {
	nLayer := len(s.layers)
	var keys []golden.Key
	for _, st := range s.Stages() {
		for _, l := range s.layersOf(st) {
			for _, p := range s.Positions() {
				keys = append(keys, golden.Key{PromptID: promptID, PosID: p, Layer: golden.LayerOf(st, l, nLayer), TensorName: st.String()})
			}
		}
	}
	slices.SortFunc(keys, order)
	return keys
}

// layersOf lists the layers whose rows of stage st are selected: the selected layers for a
// per-layer stage, one placeholder for embed_out and logits.
func (s *Selection) layersOf(st golden.Stage) []int {
	if st.Info().PerLayer {
		return s.Layers()
	}
	return []int{0}
}
