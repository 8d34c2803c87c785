package ownerr

import (
	"fmt"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/ref"
)

// PerOp computes the own error of every selected row per operation, for a candidate that
// cannot replay but wrote its rows (an external engine's raw_file rows, RowsFromTrace): the
// reference r recomputes each row from the candidate's own input rows of that operation,
// and the candidate's row is compared with the result. What each stage reads is
// ref.Inputs: attn_in its residual_pre_attn, q/k/v their attn_in, the rotated q and k their
// projections, attn_ctx the rotated query and the keys and values of every position 0..p of
// its layer, attn_out its attn_ctx, the residual adds both addends, ffn_norm_in its
// residual_post_attn, mlp_out its ffn_norm_in, residual_pre_attn the previous layer's
// residual_post_mlp (embed_out in layer 0), logits the last layer's residual_post_mlp.
// embed_out reads only its token: its own error is its end-to-end error. A record whose
// rows are missing names the first missing one and has no Own.
//
// base.Rows, when set (the reference's rows of the same prompt, KeepRows), adds each
// record's Total and Inherited; base.Config must be r's model's.
func PerOp(r *ref.Engine, base Run, cand *Rows, sel *engine.Selection) ([]Record, error) {
	nLayer := base.Config.NLayer
	var out []Record
	var in [][]float32
	for _, st := range sel.Stages() {
		for _, l := range stageLayers(st, sel, nLayer) {
			for _, p := range sel.Positions() {
				k := Key{st, l, p}
				if st == golden.EmbedOut {
					out = append(out, embedOwn(base, p, cand))
					continue
				}
				if cand.Row(k) == nil {
					out = append(out, Record{Key: k, Missing: "the candidate's " + k.String()})
					continue
				}
				var missing string
				if in, missing = gather(in[:0], cand, st, l, p); missing != "" {
					out = append(out, Record{Key: k, Missing: missing})
					continue
				}
				row := make([]float32, r.Width(st))
				if err := r.Recompute(row, st, l, p, in); err != nil {
					return nil, fmt.Errorf("ownerr: the candidate's %s: %w", k, err)
				}
				rec, err := compare(k, row, base.Rows, cand, false)
				if err != nil {
					return nil, err
				}
				out = append(out, rec)
			}
		}
	}
	base.sort(out)
	return out, nil
}

// gather appends the candidate's input rows of stage st at (layer, pos) to in, a prefix
// input as one concatenated row; missing names the first row cand lacks.
func gather(in [][]float32, cand *Rows, st golden.Stage, layer, pos int) (_ [][]float32, missing string) {
	for _, want := range ref.Inputs(st, layer, pos) {
		from := want.Pos
		if want.Prefix {
			from = 0
		}
		var row []float32
		for p := from; p <= want.Pos; p++ {
			k := Key{want.Stage, want.Layer, p}
			r := cand.Row(k)
			if r == nil {
				return in, "the candidate's " + k.String()
			}
			if from == want.Pos {
				row = r
			} else {
				row = append(row, r...)
			}
		}
		in = append(in, row)
	}
	return in, ""
}

// opInputs lists the rows the operation of st at (layer, pos) reads, prefixes expanded.
func opInputs(st golden.Stage, layer, pos, nLayer int) []Key {
	var out []Key
	for _, in := range ref.Inputs(st, golden.LayerOf(st, layer, nLayer), pos) {
		from := in.Pos
		if in.Prefix {
			from = 0
		}
		for p := from; p <= in.Pos; p++ {
			out = append(out, Key{in.Stage, in.Layer, p})
		}
	}
	return out
}
