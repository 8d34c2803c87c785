package gretatest

import (
	"fmt"
	"io"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
)

// WriteSummary writes the seed's two tables for the whole run: the First Failure Table (per
// prompt, the first traced failure and, when self-bisection moved it, the isolated origin
// marked FIRST_FAIL; for a run that crashed or hung with nothing diverged before, the first
// record it did not reach) and the Root Cause Summary (the categories of the origins, then
// CRASH and HANG rows when runs ended so), then one line per origin saying how it was
// isolated.
func (r *Report) WriteSummary(w io.Writer) error {
	var b strings.Builder
	b.WriteString("## First Failure Table\n\n| Prompt | Position | Layer | Tensor | Hash Match | MAE | FIRST_FAIL (Y/N) |\n|---|---|---|---|---|---|---|\n")
	counts := map[golden.Category]int{}
	failing := 0
	for _, p := range r.Prompts {
		switch {
		case p.Err != nil:
			fmt.Fprintf(&b, "| %s | - | - | error: %v | - | - | - |\n", p.PromptID, oneLine(p.Err.Error()))
			continue
		case p.Recorded:
			fmt.Fprintf(&b, "| %s | - | - | (golden recorded: %s) | - | - | - |\n", p.PromptID, p.Baseline)
			continue
		case p.Crash != nil && p.FirstTraced == nil:
			b.WriteString(crashRow(p))
			counts[p.Crash.Category()]++
			failing++
			continue
		case p.FirstTraced == nil && p.Isolated != nil: // the replay policy: an own error, nothing over the tolerance
			failing++
			writeRow(&b, p.Isolated, "Y (own error)")
			counts[p.Isolated.Category]++
			continue
		case p.FirstTraced == nil:
			match := "YES"
			switch {
			case p.Result != nil && p.Result.Own != nil:
				match = "own errors within their floors"
			case p.Result != nil && p.Result.WithinTolerance > 0:
				match = "within tolerance"
			}
			fmt.Fprintf(&b, "| %s | - | - | (%d records match) | %s | - | N |\n", p.PromptID, p.Compared, match)
			continue
		}
		failing++
		if p.Isolated != nil && p.Isolated.Key != p.FirstTraced.Key {
			writeRow(&b, p.FirstTraced, "N")
			writeRow(&b, p.Isolated, "Y (isolated)")
			counts[p.Isolated.Category]++
			continue
		}
		writeRow(&b, p.FirstTraced, "Y")
		counts[p.FirstTraced.Category]++
	}
	b.WriteString("\n## Root Cause Summary\n\n| Category | Occurrences | Percentage |\n|---|---|---|\n")
	cats := golden.Categories
	for _, c := range []golden.Category{golden.Crashed, golden.Hung} {
		if counts[c] > 0 {
			cats = append(cats[:len(cats):len(cats)], c)
		}
	}
	for _, c := range cats {
		pct := "0%"
		if failing > 0 {
			pct = fmt.Sprintf("%.0f%%", 100*float64(counts[c])/float64(failing))
		}
		fmt.Fprintf(&b, "| %s | %d | %s |\n", c, counts[c], pct)
	}
	for _, p := range r.Prompts {
		if p.Origin != nil {
			fmt.Fprintf(&b, "\n%s: origin %s, isolated in %s", p.PromptID, p.Origin, p.Origin.RunsText())
		}
	}
	b.WriteString("\n")
	_, err := io.WriteString(w, b.String())
	return err
}

func writeRow(b *strings.Builder, f *golden.Failure, mark string) {
	mae := "n/a"
	if f.Diff != nil {
		mae = fmt.Sprintf("%.3g", f.Diff.MAE)
	}
	fmt.Fprintf(b, "| %s | %d | %d | %s | %s | %s | %s |\n", f.PromptID, f.PosID, f.Layer, f.TensorName, yesNo(f.HashMatch), mae, mark)
}

func oneLine(s string) string {
	first, _, _ := strings.Cut(s, "\n")
	return first
}
