package golden

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// MaxTableRows caps the failing records listed per prompt in the Markdown and HTML reports;
// a "... and N more" line says what was left out. The JSON report lists everything.
const MaxTableRows = 25

// Line returns the one-line message for a failure, the form a failing test prints:
//
//	p6_len_16: FIRST_FAIL pos=826 layer=0 tensor=residual_pre_attn category=ROUTING/SELECTION (hash 3a7b2c1d.. want 9f00e1aa.., MAE 0.142, rel_l2 0.31)
//
// Hashes are the candidate's then the baseline's, first 8 hex digits. "MAE n/a" when no
// size is known. A failure other than the first says FAIL instead of FIRST_FAIL.
func (f *Failure) Line() string {
	tag := "FAIL"
	if f.FirstFail {
		tag = "FIRST_FAIL"
	}
	var detail string
	switch {
	case f.Reason == ReasonToken:
		detail = fmt.Sprintf("token_id %d want %d", f.TokenID, f.BaselineTokenID)
	case f.Reason == ReasonShape:
		detail = fmt.Sprintf("hash %s.. want %s.., row lengths differ", shortHash(f.Hash), shortHash(f.BaselineHash))
	case f.Own != nil && f.Hash == "" && f.Diff == nil: // own error of a record traced by replay only
		detail = "end to end n/a"
	case f.Own != nil && f.Hash == "": // its end-to-end error from raw rows, not from a traced record
		detail = fmt.Sprintf("end to end MAE %s, rel_l2 %s", formatNum(f.Diff.MAE), formatNum(f.Diff.RelL2))
	case f.Diff == nil:
		detail = fmt.Sprintf("hash %s.. want %s.., MAE n/a", shortHash(f.Hash), shortHash(f.BaselineHash))
	default:
		detail = fmt.Sprintf("hash %s.. want %s.., MAE %s, rel_l2 %s",
			shortHash(f.Hash), shortHash(f.BaselineHash), formatNum(f.Diff.MAE), formatNum(f.Diff.RelL2))
	}
	return fmt.Sprintf("%s: %s pos=%d layer=%d tensor=%s category=%s (%s%s)",
		f.PromptID, tag, f.PosID, f.Layer, f.TensorName, f.Category, detail, f.ownLine())
}

// Line returns one line for a prompt: its FIRST_FAIL line when diverged, its crash's line
// when its run ended early, else its status.
func (p *PromptResult) Line() string {
	switch p.Status {
	case StatusDiverged:
		return p.FirstFail.Line()
	case StatusCrash, StatusHang:
		return p.Crash.Line(p.PromptID)
	case StatusMissing:
		var parts []string
		for _, m := range []struct {
			keys []Key
			what string
		}{{p.MissingInCandidate, "baseline"}, {p.MissingInBaseline, "candidate"}} {
			if len(m.keys) > 0 {
				k := m.keys[0]
				parts = append(parts, fmt.Sprintf("%s absent from the %s (first pos=%d layer=%d tensor=%s)",
					plural(len(m.keys), m.what+" record"), otherSide(m.what), k.PosID, k.Layer, k.TensorName))
			}
		}
		return fmt.Sprintf("%s: MISSING %s", p.PromptID, strings.Join(parts, "; "))
	}
	return fmt.Sprintf("%s: match (%d records)", p.PromptID, p.Compared)
}

// WriteLines writes what a command prints after a comparison: the line of every prompt that
// does not match (and the crash that ended a run after it diverged), the notes, then the
// summary.
func (r *Report) WriteLines(w io.Writer) error {
	var b strings.Builder
	for _, p := range r.Prompts {
		if p.Status != StatusMatch {
			b.WriteString(p.Line() + "\n")
		}
		if p.Status == StatusDiverged && p.Crash != nil {
			b.WriteString(p.Crash.Line(p.PromptID) + "\n")
		}
	}
	for _, n := range r.Notes {
		b.WriteString("note: " + n + "\n")
	}
	b.WriteString(r.Summary() + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// Summary returns one line for the whole report.
func (r *Report) Summary() string {
	var n [4]int
	compared, mismatched, missing := 0, 0, 0
	for _, p := range r.Prompts {
		switch p.Status {
		case StatusMatch:
			n[0]++
		case StatusDiverged:
			n[1]++
		case StatusMissing:
			n[2]++
		case StatusCrash, StatusHang:
			n[3]++
		}
		compared += p.Compared
		mismatched += p.Mismatched
		missing += p.Missing()
	}
	crashed := ""
	if n[3] > 0 {
		crashed = fmt.Sprintf(", %d crashed", n[3])
	}
	return fmt.Sprintf("policy %s: %s (%d match, %d diverged, %d missing%s); %s compared, %d mismatched, %d missing",
		r.Policy.Name, plural(len(r.Prompts), "prompt"), n[0], n[1], n[2], crashed, plural(compared, "record"), mismatched, missing)
}

// shortHash returns the first 8 digits after the algorithm prefix.
func shortHash(h string) string {
	if i := strings.IndexByte(h, ':'); i >= 0 {
		h = h[i+1:]
	}
	if len(h) > 8 {
		h = h[:8]
	}
	if h == "" {
		return "none"
	}
	return h
}

// formatNum writes a size with 3 significant digits.
func formatNum(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "inf"
	case v != v:
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', 3, 64)
}

// plural returns "1 record" or "n records".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}

func (f *Failure) maeText() string {
	if f.Diff == nil {
		return "n/a"
	}
	return formatNum(f.Diff.MAE)
}

func (f *Failure) relText() string {
	if f.Diff == nil {
		return "n/a"
	}
	return formatNum(f.Diff.RelL2)
}

func percent(n, total int) string {
	if total == 0 {
		return "0.0%"
	}
	return strconv.FormatFloat(100*float64(n)/float64(total), 'f', 1, 64) + "%"
}

// WriteMarkdown writes the seed's analysis format: the First Failure Table and the Root
// Cause Summary, then per-prompt status, missing records and notes.
func (r *Report) WriteMarkdown(w io.Writer) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# gretabisect report\n\n%s.\n\n", r.Summary())
	b.WriteString("## First Failure Table\n\n")
	b.WriteString("| Prompt | Position | Layer | Tensor | Hash Match | MAE | FIRST_FAIL (Y/N) |\n")
	b.WriteString("|---|---|---|---|---|---|---|\n")
	var tokens []string
	for _, p := range r.Prompts {
		for i := range p.Failures {
			f := &p.Failures[i]
			if f.Reason == ReasonToken {
				tokens = append(tokens, f.Line())
			}
			if i == MaxTableRows {
				fmt.Fprintf(&b, "| %s | ... and %d more | | | | | |\n", p.PromptID, len(p.Failures)-i)
				continue
			}
			if i > MaxTableRows {
				continue
			}
			fmt.Fprintf(&b, "| %s | %d | %d | %s | %s | %s | %s |\n",
				f.PromptID, f.PosID, f.Layer, f.TensorName, yesNo(f.HashMatch), f.maeText(), yesNo(f.FirstFail))
		}
	}
	b.WriteString("\n## Root Cause Summary\n\n| Category | Occurrences | Percentage |\n|---|---|---|\n")
	for _, c := range r.rootCauses() {
		fmt.Fprintf(&b, "| %s | %d | %s |\n", c.Category, c.Count, c.Percent)
	}
	b.WriteString("\n## Prompts\n\n| Prompt | Status | Compared | Mismatched | Missing | FIRST_FAIL |\n|---|---|---|---|---|---|\n")
	for _, p := range r.Prompts {
		first := "-"
		if f := p.FirstFail; f != nil {
			first = fmt.Sprintf("pos=%d layer=%d tensor=%s category=%s rel_l2=%s", f.PosID, f.Layer, f.TensorName, f.Category, f.relText())
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %s |\n", p.PromptID, p.Status, p.Compared, p.Mismatched, p.Missing(), first)
	}
	for _, p := range r.Prompts {
		writeBisection(&b, p)
	}
	var crashes []string
	for _, p := range r.Prompts {
		if p.Crash != nil {
			crashes = append(crashes, p.Crash.Line(p.PromptID))
		}
	}
	if len(crashes) > 0 {
		b.WriteString("\n## Runs that ended early\n\n")
		for _, c := range crashes {
			fmt.Fprintf(&b, "- %s\n", c)
		}
	}
	if len(tokens) > 0 {
		b.WriteString("\n## Input divergences\n\n")
		for _, t := range tokens {
			fmt.Fprintf(&b, "- %s\n", t)
		}
	}
	var missing bytes.Buffer
	for _, p := range r.Prompts {
		writeMissing(&missing, p.PromptID, "baseline", p.MissingInCandidate)
		writeMissing(&missing, p.PromptID, "candidate", p.MissingInBaseline)
	}
	if missing.Len() > 0 {
		b.WriteString("\n## Missing records\n\n")
		b.Write(missing.Bytes())
	}
	b.WriteString(shapeMarkdown(r.Prompts))
	for _, p := range r.Prompts {
		writeOwn(&b, p)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n## Notes\n\n")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// extraRunRow is one extra run as the Markdown and HTML tables show it.
type extraRunRow struct {
	N                               int
	Kind, Layers, Positions, Policy string
	Compared, Mismatched            int
	Step                            string
}

func (p *PromptResult) extraRunRows() []extraRunRow {
	rows := make([]extraRunRow, len(p.Extra))
	for i, r := range p.Extra {
		rows[i] = extraRunRow{i + 1, r.Kind, layersText(r.Layers), r.Positions, r.Policy.Name, r.Compared, r.Mismatched, r.Step}
	}
	return rows
}

// layersText lists layers compactly: "5", "0-9".
func layersText(layers []int) string {
	if len(layers) > 2 && layers[len(layers)-1]-layers[0] == len(layers)-1 {
		return fmt.Sprintf("%d-%d", layers[0], layers[len(layers)-1])
	}
	parts := make([]string, len(layers))
	for i, l := range layers {
		parts[i] = strconv.Itoa(l)
	}
	return strings.Join(parts, ",")
}

// writeBisection writes the Markdown section on how a prompt's origin was isolated: the
// planned trace's first failure, the origin, and each extra run with what it found.
func writeBisection(b *bytes.Buffer, p *PromptResult) {
	if len(p.Extra) == 0 || p.FirstFail == nil {
		return
	}
	f := p.FirstFail
	fmt.Fprintf(b, "\n## Self-bisection of %s\n\nIsolated origin (FIRST_FAIL): pos=%d layer=%d tensor=%s category=%s, in %s.\n\nFirst failure of the planned trace: %s\n\n",
		p.PromptID, f.PosID, f.Layer, f.TensorName, f.Category, p.RunsText(), p.FirstTraced.Line())
	b.WriteString("| Run | Kind | Layers | Positions | Policy | Compared | Mismatched | Finding |\n|---|---|---|---|---|---|---|---|\n")
	for _, r := range p.extraRunRows() {
		fmt.Fprintf(b, "| %d | %s | %s | %s | %s | %d | %d | %s |\n", r.N, r.Kind, r.Layers, r.Positions, r.Policy, r.Compared, r.Mismatched, r.Step)
	}
}

func otherSide(side string) string {
	if side == "baseline" {
		return "candidate"
	}
	return "baseline"
}

// writeMissing lists the keys present on side only.
func writeMissing(b *bytes.Buffer, prompt, side string, keys []Key) {
	if len(keys) == 0 {
		return
	}
	fmt.Fprintf(b, "- %s: %s absent from the %s:", prompt, plural(len(keys), side+" record"), otherSide(side))
	for i, k := range keys {
		if i == MaxTableRows {
			fmt.Fprintf(b, " ... and %d more", len(keys)-i)
			break
		}
		fmt.Fprintf(b, " pos=%d/layer=%d/%s", k.PosID, k.Layer, k.TensorName)
	}
	b.WriteString("\n")
}

// The JSON report's shape; field order is the schema's.
type (
	jsonReport struct {
		Policy     string         `json:"policy"`
		Notes      []string       `json:"notes"`
		Prompts    []jsonPrompt   `json:"prompts"`
		Categories categoryCounts `json:"categories"`
	}
	jsonPrompt struct {
		PromptID           string        `json:"prompt_id"`
		Status             Status        `json:"status"`
		Compared           int           `json:"compared"`
		Mismatched         int           `json:"mismatched"`
		Missing            int           `json:"missing"`
		FirstFail          *jsonFailure  `json:"first_fail"`
		FirstTraced        *jsonFailure  `json:"first_traced"`
		Origin             *jsonOrigin   `json:"origin"`
		Crash              *jsonCrash    `json:"crash,omitempty"`
		Failures           []jsonFailure `json:"failures"`
		MissingInCandidate []jsonKey     `json:"missing_in_candidate"`
		MissingInBaseline  []jsonKey     `json:"missing_in_baseline"`
		Shape              *jsonShape    `json:"shape"`
		Own                *jsonOwn      `json:"own"`
	}
	jsonFailure struct {
		PosID           int        `json:"pos_id"`
		TokenID         int        `json:"token_id"`
		Layer           int        `json:"layer"`
		TensorName      string     `json:"tensor_name"`
		Category        Category   `json:"category"`
		HashMatch       bool       `json:"hash_match"`
		MAE             jsonFloat  `json:"mae"`
		RelL2           jsonFloat  `json:"rel_l2"`
		Reason          string     `json:"reason"`
		Hash            string     `json:"hash"`
		BaselineHash    string     `json:"baseline_hash"`
		BaselineTokenID int        `json:"baseline_token_id"`
		FirstFail       bool       `json:"first_fail"`
		OwnRelL2        *jsonFloat `json:"own_rel_l2,omitempty"` // the replay policy's own error and its floor
		Floor           *jsonFloat `json:"floor,omitempty"`
	}
	// jsonOrigin is how self-bisection isolated first_fail: null when no extra run was made.
	jsonOrigin struct {
		PosID        int       `json:"pos_id"`
		Layer        int       `json:"layer"`
		TensorName   string    `json:"tensor_name"`
		Category     Category  `json:"category"`
		ExtraRuns    int       `json:"extra_runs"`
		LayerRuns    int       `json:"layer_runs"`
		PositionRuns int       `json:"position_runs"`
		Runs         []jsonRun `json:"runs"`
	}
	jsonRun struct {
		Kind       string       `json:"kind"`
		Layers     []int        `json:"layers"`
		Positions  string       `json:"positions"`
		Policy     string       `json:"policy"`
		Compared   int          `json:"compared"`
		Mismatched int          `json:"mismatched"`
		FirstFail  *jsonFailure `json:"first_fail"`
		Step       string       `json:"step"`
	}
	jsonKey struct {
		PosID      int    `json:"pos_id"`
		Layer      int    `json:"layer"`
		TensorName string `json:"tensor_name"`
	}
	// jsonCrash is how a run ended early: last is the last planned record written before
	// the end, next the first one missing (null when none).
	jsonCrash struct {
		Verdict Category `json:"verdict"`
		Reason  string   `json:"reason"`
		Log     string   `json:"log,omitempty"`
		Planned int      `json:"planned"`
		Written int      `json:"written"`
		Last    *jsonKey `json:"last"`
		Next    *jsonKey `json:"next"`
	}
	// jsonFloat is a size, null when unknown or not finite (JSON has no infinity).
	jsonFloat      struct{ v *float64 }
	categoryCounts []causeRow
)

func (f jsonFloat) MarshalJSON() ([]byte, error) {
	if f.v == nil || math.IsInf(*f.v, 0) || math.IsNaN(*f.v) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, *f.v, 'g', -1, 64), nil
}

// MarshalJSON writes every row of the Root Cause Summary, in report order.
func (c categoryCounts) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, row := range c {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%q:%d", row.Category, row.Count)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

func toJSONFailure(f *Failure) jsonFailure {
	j := jsonFailure{
		PosID: f.PosID, TokenID: f.TokenID, Layer: f.Layer, TensorName: f.TensorName,
		Category: f.Category, HashMatch: f.HashMatch, Reason: f.Reason,
		Hash: f.Hash, BaselineHash: f.BaselineHash, BaselineTokenID: f.BaselineTokenID, FirstFail: f.FirstFail,
	}
	if f.Diff != nil {
		mae, rel := f.Diff.MAE, f.Diff.RelL2
		j.MAE, j.RelL2 = jsonFloat{&mae}, jsonFloat{&rel}
	}
	if f.Own != nil {
		own, floor := float(f.Own.RelL2), float(f.Own.Floor)
		j.OwnRelL2, j.Floor = &own, &floor
	}
	return j
}

func toJSONCrash(c *Crash) *jsonCrash {
	if c == nil {
		return nil
	}
	j := &jsonCrash{Verdict: c.Category(), Reason: c.Reason, Log: c.Log, Planned: c.Planned, Written: c.Written}
	for _, k := range []struct {
		dst **jsonKey
		k   *Key
	}{{&j.Last, c.Last}, {&j.Next, c.Next}} {
		if k.k != nil {
			*k.dst = &jsonKey{k.k.PosID, k.k.Layer, k.k.TensorName}
		}
	}
	return j
}

func toJSONKeys(keys []Key) []jsonKey {
	out := make([]jsonKey, len(keys))
	for i, k := range keys {
		out[i] = jsonKey{k.PosID, k.Layer, k.TensorName}
	}
	return out
}

// WriteJSON writes the JSON report: policy, notes, prompts (status, counts, first_fail or
// null, first_traced, origin, crash when the run ended early, every failure, missing keys)
// and the count of FIRST_FAILs per category (then of CRASH and HANG when a run ended so).
// first_fail is the isolated origin when extra runs were merged in (Merge); first_traced is
// the planned trace's first failure, and origin says how the extra runs got from one to the
// other (null without extra runs).
func (r *Report) WriteJSON(w io.Writer) error {
	out := jsonReport{Policy: r.Policy.Name, Notes: r.Notes, Categories: r.rootCauses(), Prompts: []jsonPrompt{}}
	if out.Notes == nil {
		out.Notes = []string{}
	}
	for _, p := range r.Prompts {
		jp := jsonPrompt{
			PromptID: p.PromptID, Status: p.Status, Compared: p.Compared, Mismatched: p.Mismatched,
			Missing: p.Missing(), Failures: []jsonFailure{}, Crash: toJSONCrash(p.Crash),
			MissingInCandidate: toJSONKeys(p.MissingInCandidate), MissingInBaseline: toJSONKeys(p.MissingInBaseline),
			Shape: shapeJSON(p.Shape), Own: toJSONOwn(p.Own),
		}
		for i := range p.Failures {
			jp.Failures = append(jp.Failures, toJSONFailure(&p.Failures[i]))
		}
		if p.FirstFail != nil {
			f := toJSONFailure(p.FirstFail)
			jp.FirstFail = &f
		}
		if p.FirstTraced != nil {
			f := toJSONFailure(p.FirstTraced)
			jp.FirstTraced = &f
		}
		if len(p.Extra) > 0 && p.FirstFail != nil {
			f := p.FirstFail
			o := &jsonOrigin{PosID: f.PosID, Layer: f.Layer, TensorName: f.TensorName, Category: f.Category,
				ExtraRuns: len(p.Extra), LayerRuns: p.LayerRuns(), PositionRuns: p.PositionRuns(), Runs: []jsonRun{}}
			for _, r := range p.Extra {
				jr := jsonRun{Kind: r.Kind, Layers: r.Layers, Positions: r.Positions, Policy: r.Policy.Name,
					Compared: r.Compared, Mismatched: r.Mismatched, Step: r.Step}
				if r.First != nil {
					ff := toJSONFailure(r.First)
					ff.FirstFail = r.First.Key == f.Key
					jr.FirstFail = &ff
				}
				o.Runs = append(o.Runs, jr)
			}
			jp.Origin = o
		}
		out.Prompts = append(out.Prompts, jp)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// Formats a report can be written in.
const (
	FormatMarkdown = "md"
	FormatJSON     = "json"
	FormatHTML     = "html"
)

// Write writes the report in the given format (md, json or html).
func (r *Report) Write(w io.Writer, format string) error {
	switch format {
	case FormatMarkdown:
		return r.WriteMarkdown(w)
	case FormatJSON:
		return r.WriteJSON(w)
	case FormatHTML:
		return r.WriteHTML(w)
	}
	return fmt.Errorf("unknown report format %q (want md, json or html)", format)
}

// WriteFile writes the report to path atomically.
func (r *Report) WriteFile(path, format string) error {
	return WriteFileAtomic(path, func(w io.Writer) error { return r.Write(w, format) })
}
