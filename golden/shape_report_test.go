package golden

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
)

// demoShape is the shape of a fault like the demo's p0_short one: layer 2's attention
// context scaled by 1.05 in head 2 from position 3, over positions 0..39.
func demoShape(t testing.TB) *Shape {
	t.Helper()
	rng := rand.New(rand.NewPCG(21, 22))
	in := ShapeInput{Stage: AttnCtx, Layer: 2, Origin: 3, HeadDim: 32, NPrompt: 40}
	for p := 0; p < 40; p++ {
		b := make([]float32, 256)
		for i := range b {
			b[i] = float32(rng.NormFloat64())
		}
		c := append([]float32(nil), b...)
		if p >= 3 {
			for i := 64; i < 96; i++ {
				c[i] = float32(c[i] * 1.05)
			}
		}
		in.Pos, in.Cand, in.Base = append(in.Pos, p), append(in.Cand, c), append(in.Base, b)
	}
	sh, err := DiagnoseShape(in)
	if err != nil {
		t.Fatal(err)
	}
	return sh
}

// demoShapeReport is the demo report with the shape on p0_short.
func demoShapeReport(t *testing.T) *Report {
	rep := demoReport(t)
	for _, p := range rep.Prompts {
		if p.PromptID == "p0_short" {
			p.Shape = demoShape(t)
		}
	}
	return rep
}

// TestShapeReports renders a report with a shape in every format: the section is there with
// the shape's numbers, and the pages match their goldens.
func TestShapeReports(t *testing.T) {
	rep := demoShapeReport(t)
	sh := rep.Prompts[0].Shape
	if sh == nil || rep.Prompts[0].PromptID != "p0_short" {
		t.Fatalf("the demo report's first prompt is %s", rep.Prompts[0].PromptID)
	}
	const line = "shape: positions >= 3 (all of 3..39); channels: head 2 (of 8); kind: uniform scale x1.05 -> hypothesis: KV cache: "
	if !strings.HasPrefix(sh.Line(), line) {
		t.Fatalf("demo shape %q, want it to start %q", sh.Line(), line)
	}
	out := map[string]string{}
	for _, f := range []string{FormatMarkdown, FormatJSON, FormatHTML} {
		var b bytes.Buffer
		if err := rep.Write(&b, f); err != nil {
			t.Fatal(err)
		}
		out[f] = b.String()
		assertGolden(t, "report/shape_demo."+f, b.Bytes())
	}
	if md := out[FormatMarkdown]; !strings.Contains(md, "## Shape of the divergence at its origin\n\n### p0_short: attn_ctx, layer 2, origin at position 3\n") ||
		!strings.Contains(md, "| Kind | uniform scale x1.05 |") || !strings.Contains(md, "| Hypothesis | KV cache |") {
		t.Errorf("Markdown section missing or wrong:\n%s", md)
	}
	var j struct {
		Prompts []struct {
			PromptID string     `json:"prompt_id"`
			Shape    *jsonShape `json:"shape"`
		} `json:"prompts"`
	}
	if err := json.Unmarshal([]byte(out[FormatJSON]), &j); err != nil {
		t.Fatal(err)
	}
	for _, p := range j.Prompts {
		s := p.Shape
		switch {
		case p.PromptID != "p0_short" && s != nil:
			t.Errorf("%s: a shape in the JSON report, none diagnosed", p.PromptID)
		case p.PromptID == "p0_short" && (s == nil || s.Kind.Name != KindScale || s.Kind.Factor < 1.0499 || s.Kind.Factor > 1.0501 ||
			s.Positions.Pattern != PositionsFrom || s.Positions.First != 3 || s.Channels.Pattern != ChannelsHeads ||
			len(s.Channels.Heads) != 1 || s.Channels.Heads[0] != 2 || s.Hypothesis != HypothesisKVCache || s.Line != sh.Line()):
			t.Errorf("p0_short's JSON shape %+v", s)
		}
	}
	html := out[FormatHTML]
	if !strings.Contains(html, "Shape of the divergence: attn_ctx, layer 2, origin at position 3") ||
		strings.Count(html, `fill="`+colourDivergent+`"`) != 37+32 {
		t.Errorf("HTML section: %d divergent bins, want 37 positions and 32 channels", strings.Count(html, `fill="`+colourDivergent+`"`))
	}
}
