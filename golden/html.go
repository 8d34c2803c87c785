package golden

import (
	_ "embed"
	"html/template"
	"io"
)

//go:embed report.html.tmpl
var reportHTML string

var reportTemplate = template.Must(template.New("report").Parse(reportHTML))

type htmlPrompt struct {
	*PromptResult
	Line      string
	Heatmap   heatmap
	Failures  []htmlFailure
	More      int // failures beyond MaxTableRows
	Bisection *htmlBisection
	ShapeView *htmlShape // the shape section, nil without a shape
	OwnView   *ownHTML   // the own errors of the replay policy, nil under the other policies
}

// htmlBisection is what the extra runs did, for a prompt that has them.
type htmlBisection struct {
	RunsText, TracedLine string
	Runs                 []extraRunRow
}

type htmlFailure struct {
	*Failure
	HashMatch, MAE, RelL2, First string
}

// WriteHTML writes a self-contained page: summary, legend, one heatmap per prompt (rows
// embed_out, layers, logits; columns the stages; colour the decade of the worst rel_l2; the
// FIRST_FAIL cell outlined) and its failing records. No script, no font or image from the
// network, no timestamp or random id: the same report gives the same bytes.
func (r *Report) WriteHTML(w io.Writer) error {
	data := struct {
		Summary     string
		FirstColour string
		Policy      string
		Notes       []string
		Legend      legendBar
		Categories  []causeRow
		Prompts     []htmlPrompt
	}{Summary: r.Summary(), Policy: r.Policy.Name, Notes: r.Notes, Legend: legend(), FirstColour: colourFirstFail}
	data.Categories = r.rootCauses()
	for _, p := range r.Prompts {
		hp := htmlPrompt{PromptResult: p, Line: p.Line(), Heatmap: p.heatmap(), ShapeView: shapeView(p.Shape), OwnView: ownView(p)}
		if len(p.Extra) > 0 {
			hp.Bisection = &htmlBisection{RunsText: p.RunsText(), TracedLine: p.FirstTraced.Line(), Runs: p.extraRunRows()}
		}
		for i := range p.Failures {
			if i == MaxTableRows {
				hp.More = len(p.Failures) - i
				break
			}
			f := &p.Failures[i]
			hp.Failures = append(hp.Failures, htmlFailure{f, yesNo(f.HashMatch), f.maeText(), f.relText(), yesNo(f.FirstFail)})
		}
		data.Prompts = append(data.Prompts, hp)
	}
	return reportTemplate.Execute(w, data)
}
