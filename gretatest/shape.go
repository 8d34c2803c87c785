package gretatest

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// diagnoseShape describes what the divergence looks like at the origin self-bisection
// isolated: it runs the backend under test (with its faults) and the baseline (the reference,
// without them) once each, tracing the origin's stage, and the stage before it up to the
// origin's position as a yardstick of the background noise, in the origin's layer at every
// prompt and decode position with raw rows, and hands the rows to golden.DiagnoseShape. The
// result goes on pr (Shape, or ShapeErr) and on pr.Result for the reports.
func (s *session) diagnoseShape(pr *PromptReport, r run) {
	pr.Shape, pr.ShapeErr = s.shapeOf(pr.Origin, r)
	if pr.ShapeErr != nil {
		pr.ShapeErr = fmt.Errorf("shape not diagnosed: %w", pr.ShapeErr)
	}
	pr.Result.Shape = pr.Shape
}

func (s *session) shapeOf(o *Origin, r run) (*golden.Shape, error) {
	nLayer := s.m.Config.NLayer
	quiet, quietLayer, hasQuiet := stageBefore(o.Stage, o.Layer, nLayer)
	r.plan = trace.Plan{AllPositions: true, Prefill: true, Decode: true, MaxNewTokens: r.plan.MaxNewTokens,
		Stages: []golden.Stage{o.Stage}, Layers: []int{max(o.Layer, 0)}}
	if hasQuiet {
		r.plan.Stages = []golden.Stage{quiet, o.Stage}
		if quietLayer >= 0 && quietLayer != o.Layer {
			r.plan.Layers = append(r.plan.Layers, quietLayer)
		}
	}
	dir, err := os.MkdirTemp("", "gretabisect-shape-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	ref, err := s.reference()
	if err != nil {
		return nil, err
	}
	sides := make([]map[golden.Key]golden.Record, 2)
	for i, t := range []tracer{s.cut, ref} {
		ri := r
		// An in-process engine writes its rows there, an external engine's are kept there.
		ri.rawDir = filepath.Join(dir, fmt.Sprint(i))
		ri.rows, ri.note = ri.rawDir, nil
		if i == 1 {
			ri.faults = nil
		}
		if err := os.Mkdir(ri.rawDir, 0o755); err != nil {
			return nil, err
		}
		recs, err := t.Trace(ri, s.progress(ri))
		if err != nil {
			return nil, fmt.Errorf("tracing %s at every position on %s: %w", o.Stage, t.Device(), err)
		}
		sides[i] = map[golden.Key]golden.Record{}
		for _, rec := range recs {
			if rec.RawFile == "" {
				return nil, fmt.Errorf("%s gives no raw rows (an external engine gives them as .npy files beside its trace, named by raw_file)", t.Device())
			}
			rec.RawFile = filepath.Join(ri.rawDir, rec.RawFile)
			sides[i][golden.KeyOf(rec)] = rec
		}
	}
	cand, base := sides[0], sides[1]

	// The rows compared: every position both sides traced, up to the first whose input token
	// differs (a decode step after other tokens were generated computes something else).
	in := golden.ShapeInput{Stage: o.Stage, Layer: o.Layer, Origin: o.Pos, HeadDim: s.m.Config.HeadDim, NPrompt: len(r.tokens)}
	var note string
	for k := range base {
		if _, ok := cand[k]; ok && k.TensorName == o.Stage.String() && k.Layer == o.Layer {
			in.Pos = append(in.Pos, k.PosID)
		}
	}
	slices.Sort(in.Pos)
	for p := range len(r.tokens) + r.plan.MaxNewTokens {
		k := golden.Key{PromptID: r.prompt.ID, PosID: p, Layer: o.Layer, TensorName: o.Stage.String()}
		if c, b := cand[k], base[k]; c.TokenID != b.TokenID {
			in.Pos = slices.DeleteFunc(in.Pos, func(q int) bool { return q >= p })
			note = fmt.Sprintf("positions from %d on left out: the candidate generated token %d there, the baseline %d", p, c.TokenID, b.TokenID)
			break
		}
	}
	if !slices.Contains(in.Pos, o.Pos) {
		return nil, fmt.Errorf("the re-run has no row of %s at the origin's position %d on both sides", o.Stage, o.Pos)
	}
	read := func(rec golden.Record) ([]float32, error) {
		_, row, err := golden.ReadNpyFile(rec.RawFile)
		return row, err
	}
	for _, p := range in.Pos {
		k := golden.Key{PromptID: r.prompt.ID, PosID: p, Layer: o.Layer, TensorName: o.Stage.String()}
		c, err1 := read(cand[k])
		b, err2 := read(base[k])
		if err := firstErr(err1, err2); err != nil {
			return nil, err
		}
		in.Cand, in.Base = append(in.Cand, c), append(in.Base, b)
	}
	if hasQuiet {
		for p := 0; p <= o.Pos; p++ {
			k := golden.Key{PromptID: r.prompt.ID, PosID: p, Layer: quietLayer, TensorName: quiet.String()}
			c, okc := cand[k]
			b, okb := base[k]
			if !okc || !okb || c.TokenID != b.TokenID {
				continue
			}
			cr, err1 := read(c)
			br, err2 := read(b)
			if err := firstErr(err1, err2); err != nil {
				return nil, err
			}
			in.QuietCand, in.QuietBase = append(in.QuietCand, cr), append(in.QuietBase, br)
		}
	}
	sh, err := golden.DiagnoseShape(in)
	if err != nil {
		return nil, err
	}
	sh.Note = note
	return sh, nil
}

// stageBefore is the stage just before st at layer in causal order (its layer as records
// carry it), whose rows are clean at every position up to the origin's; none for embed_out.
func stageBefore(st golden.Stage, layer, nLayer int) (golden.Stage, int, bool) {
	switch {
	case st == golden.EmbedOut:
		return 0, 0, false
	case st == golden.Logits:
		return golden.ResidualPostMLP, nLayer - 1, true
	case st == golden.ResidualPreAttn && layer == 0:
		return golden.EmbedOut, -1, true
	case st == golden.ResidualPreAttn:
		return golden.ResidualPostMLP, layer - 1, true
	}
	return st - 1, layer, true
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// shapeLine is the line printed after the FIRST_FAIL line: the shape, or why there is none.
func (pr *PromptReport) shapeLine() string {
	switch {
	case pr.Shape != nil:
		return pr.Shape.Line() + "\n"
	case pr.ShapeErr != nil:
		return pr.ShapeErr.Error() + "\n"
	}
	return ""
}
