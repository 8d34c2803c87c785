package gretatest

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
)

// crashOf separates a run's end from its other errors: a *golden.Crash from the backend
// under test is located in r's plan and returned with a nil error.
func (s *session) crashOf(r run, written []golden.Record, err error) (*golden.Crash, error) {
	var c *golden.Crash
	if !errors.As(err, &c) {
		return nil, err
	}
	sel := r.plan.Resolve(s.m.Config.NLayer, len(r.tokens))
	c.Locate(sel.Keys(r.prompt.ID, golden.RouteOrder(golden.RoutePrefill, len(r.tokens))), written)
	return c, nil
}

// planned keeps the baseline records r's plan selects (a golden may hold more layers or
// generated tokens than the plan asks for) and, when the run ended early, those it reached.
func (s *session) planned(r run, base []golden.Record, crash *golden.Crash) []golden.Record {
	sel := r.plan.Resolve(s.m.Config.NLayer, len(r.tokens))
	return filter(base, func(rec golden.Record) bool {
		st, ok := golden.StageByName(rec.TensorName)
		if ok && !sel.Want(st, rec.Layer, rec.PosID) {
			return false
		}
		return crash == nil || crash.Reached(golden.KeyOf(rec))
	})
}

// compareRun compares a run's records with its baseline. When the run ended early, what it
// wrote is compared first (a divergence before the end stays the FIRST_FAIL), and a run that
// wrote nothing comparable is a crash result.
func compareRun(id string, cand, base []golden.Record, pol golden.Policy, crash *golden.Crash) (*golden.PromptResult, error) {
	if crash == nil {
		return compareOne(cand, base, pol)
	}
	if !shareKey(cand, base) {
		return golden.CrashResult(id, crash), nil
	}
	res, err := compareOne(cand, base, pol)
	if err != nil {
		return nil, err
	}
	res.SetCrash(crash)
	return res, nil
}

// shareKey reports whether a and b have a key in common.
func shareKey(a, b []golden.Record) bool {
	keys := make(map[golden.Key]bool, len(a))
	for _, r := range a {
		keys[golden.KeyOf(r)] = true
	}
	return slices.ContainsFunc(b, func(r golden.Record) bool { return keys[golden.KeyOf(r)] })
}

// crashMessage is the failure of a prompt whose run ended early with nothing diverged
// before: the verdict line, what was compared, the paths.
func (s *session) crashMessage(pr *PromptReport) string {
	var b strings.Builder
	b.WriteString(pr.Line + "\n")
	if res := pr.Result; res != nil && res.Compared > 0 {
		fmt.Fprintf(&b, "the %d records compared before the end match %s (%s)\n", res.Compared, pr.Baseline, pr.Policy)
	} else {
		fmt.Fprintf(&b, "no record written before the end could be compared with %s\n", pr.Baseline)
	}
	b.WriteString(s.paths(pr.PromptID))
	return b.String()
}

// crashSection adds to a failure message the end of a run that diverged before it ended.
func crashSection(pr *PromptReport) string {
	if pr.Crash == nil {
		return ""
	}
	return "then the run ended early (self-bisection skipped: every re-run would end there too):\n  " + pr.Crash.Line(pr.PromptID) + "\n"
}

// logPath is the file an external engine's output for a prompt goes to: run/<prompt>.log
// under the artifacts, the seed's layout; "" without artifacts.
func (s *session) logPath(promptID string) string {
	if s.artDir == "" {
		return ""
	}
	return filepath.Join(s.artDir, "run", promptID+".log")
}

// unsizedNote says how many records carry no sketch (their raw rows, when an engine wrote
// any, have been sketched by now): a difference in them has no size, and a tolerance
// policy can only compare their hashes.
func unsizedNote(promptID, device string, recs []golden.Record) string {
	n := 0
	for i := range recs {
		if recs[i].Sketch == nil {
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return fmt.Sprintf("%s: %d of %d records from %s carry neither a sketch nor raw rows: a difference in them cannot be sized (MAE n/a), so the tolerance policy compares their hashes and fails any rounding difference",
		promptID, n, len(recs), device)
}

// missingHint explains a candidate that lacks the records of generated tokens and nothing
// else: an engine that only prefills, or stops generating early.
func missingHint(res *golden.PromptResult, nPrompt, maxNew int) string {
	keys := res.MissingInCandidate
	if len(keys) == 0 || len(res.MissingInBaseline) > 0 || slices.ContainsFunc(keys, func(k golden.Key) bool { return k.PosID < nPrompt }) {
		return ""
	}
	first, last := keys[0].PosID, keys[0].PosID
	for _, k := range keys {
		first, last = min(first, k.PosID), max(last, k.PosID)
	}
	return fmt.Sprintf(": the generated tokens at positions %d..%d are missing (the plan generates %d after the %d-token prompt); an engine that only prefills runs with --max-tokens 0 (gretatest.MaxNewTokens(0))",
		first, last, maxNew, nPrompt)
}

// crashRow is the First Failure Table's row of a run that ended early with nothing diverged
// before: the first planned record missing, and the verdict.
func crashRow(p *PromptReport) string {
	pos, layer, tensor := "-", "-", "(no planned record missing)"
	if k := p.Crash.Next; k != nil {
		pos, layer, tensor = fmt.Sprint(k.PosID), fmt.Sprint(k.Layer), k.TensorName+" (not reached)"
	}
	return fmt.Sprintf("| %s | %s | %s | %s | - | - | %s |\n", p.PromptID, pos, layer, tensor, p.Crash.Category())
}
