package golden

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Kinds of extra run (self-bisection's re-runs of a prompt beyond its planned trace).
const (
	// RunLayers traces one untraced layer, to bisect the gap below the first failing layer.
	RunLayers = "layers"
	// RunPositions traces every position up to the failing one in one layer, to find the
	// earliest key or value that attention carried forward.
	RunPositions = "positions"
	// RunColumn traces every layer at one position, to find where the residual stream
	// entering a layer first went wrong.
	RunColumn = "column"
)

// ExtraRun is one re-run of a prompt that self-bisection made to isolate the origin of a
// divergence: which layers and positions it traced, what it compared and what it found.
// Merge folds its records into the prompt's result, so that every report names the origin.
type ExtraRun struct {
	Kind      string `json:"kind"`      // RunLayers, RunPositions or RunColumn
	Layers    []int  `json:"layers"`    // the model layers it traced
	Positions string `json:"positions"` // the positions it compared, in words: "planned", "0..1000", "1000"
	Step      string `json:"step"`      // what it found, in words
	Policy    Policy `json:"policy"`    // how its records were compared

	Compared   int      `json:"-"` // records of this run compared (with Merge)
	Mismatched int      `json:"-"` // of which failed
	First      *Failure `json:"-"` // its first divergence, nil when clean
}

// Merge compares the records of an extra run of pr's prompt under the run's policy and folds
// them into pr: its failures join pr's (keys pr already compared keep their first verdict),
// its layers become heatmap rows, and FirstFail becomes the first failure, in causal order,
// of everything compared, which is the origin self-bisection isolated. Records without a
// counterpart on the other side are not missing records here: an extra run compares only
// what both sides traced. FirstTraced keeps the planned trace's first failure.
func (pr *PromptResult) Merge(run ExtraRun, cand, base *Trace) error {
	ci, err := indexTraces([]*Trace{cand}, "candidate")
	if err != nil {
		return err
	}
	bi, err := indexTraces([]*Trace{base}, "baseline")
	if err != nil {
		return err
	}
	c, b := ci[pr.PromptID], bi[pr.PromptID]
	if c == nil || b == nil {
		return fmt.Errorf("extra run %q: traces of prompt %q, want %q", run.Step, cand.PromptID, pr.PromptID)
	}
	var err2 error
	run.Compared, run.Mismatched, run.First, err2 = pr.compareSide(c, b, run.Policy, false)
	if err2 != nil {
		return fmt.Errorf("extra run %q: %w", run.Step, err2)
	}
	pr.Extra = append(pr.Extra, run)
	pr.settle(pr.grid)
	if pr.Mismatched > 0 {
		pr.Status = StatusDiverged
	}
	return nil
}

// LayerRuns and PositionRuns count pr's extra runs of each purpose: layer runs bisect a gap
// of untraced layers, position runs (RunPositions and RunColumn) search earlier positions.
func (pr *PromptResult) LayerRuns() int {
	n := 0
	for _, r := range pr.Extra {
		if r.Kind == RunLayers {
			n++
		}
	}
	return n
}

// PositionRuns: see LayerRuns.
func (pr *PromptResult) PositionRuns() int { return len(pr.Extra) - pr.LayerRuns() }

// RunsText says how many extra runs isolated the origin and where: "2 extra runs (1 over
// layers, 1 over positions)".
func (pr *PromptResult) RunsText() string {
	noun := "runs"
	if len(pr.Extra) == 1 {
		noun = "run"
	}
	return fmt.Sprintf("%d extra %s (%d over layers, %d over positions)", len(pr.Extra), noun, pr.LayerRuns(), pr.PositionRuns())
}

// The on-disk layout of extra runs, beside a comparison's two trace folders:
//
//	<dir>/<prompt_id>/run<N>/run.json               the ExtraRun (kind, layers, positions, step, policy)
//	<dir>/<prompt_id>/run<N>/traces/<prompt_id>_trace.jsonl     the backend under test
//	<dir>/<prompt_id>/run<N>/baseline/<prompt_id>_trace.jsonl   the baseline
//
// N counts from 1 in the order the runs ran. gretatest writes <artifacts>/extra/ this way and
// `gretabisect analyze` reads it, so the artifacts alone give the same answer as the run.
const extraRunFile = "run.json"

// WriteExtraRun writes the n-th extra run of a prompt under dir.
func WriteExtraRun(dir string, n int, run ExtraRun, cand, base []Record) error {
	if len(cand) == 0 && len(base) == 0 {
		return nil
	}
	id := promptOf(cand, base)
	runDir := filepath.Join(dir, id, "run"+strconv.Itoa(n))
	for _, side := range []struct {
		sub  string
		recs []Record
	}{{"traces", cand}, {"baseline", base}} {
		if err := os.MkdirAll(filepath.Join(runDir, side.sub), 0o755); err != nil {
			return err
		}
		if err := WriteTrace(TracePath(filepath.Join(runDir, side.sub), id), side.recs); err != nil {
			return err
		}
	}
	return WriteFileAtomic(filepath.Join(runDir, extraRunFile), func(w io.Writer) error {
		b, err := json.MarshalIndent(run, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

func promptOf(a, b []Record) string {
	if len(a) > 0 {
		return a[0].PromptID
	}
	return b[0].PromptID
}

// MergeExtraRuns reads the extra runs written under dir (WriteExtraRun's layout) and merges
// each into the report's result of its prompt, in the order they ran. It returns how many it
// merged. A prompt of dir the report does not hold is an error.
func (r *Report) MergeExtraRuns(dir string) (int, error) {
	prompts, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	merged := 0
	for _, pe := range prompts {
		if !pe.IsDir() {
			continue
		}
		i := slices.IndexFunc(r.Prompts, func(p *PromptResult) bool { return p.PromptID == pe.Name() })
		if i < 0 {
			return merged, fmt.Errorf("%s: extra runs of prompt %q, which was not compared", filepath.Join(dir, pe.Name()), pe.Name())
		}
		runs, err := readExtraRuns(filepath.Join(dir, pe.Name()), pe.Name())
		if err != nil {
			return merged, err
		}
		for _, x := range runs {
			if err := r.Prompts[i].Merge(x.run, x.cand, x.base); err != nil {
				return merged, fmt.Errorf("%s: %w", x.dir, err)
			}
			merged++
		}
	}
	return merged, nil
}

type extraOnDisk struct {
	dir        string
	run        ExtraRun
	cand, base *Trace
}

// readExtraRuns reads the runs of one prompt in the order they ran (run1, run2, ... run10).
func readExtraRuns(dir, promptID string) ([]extraOnDisk, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var nums []int
	for _, e := range entries {
		if n, err := strconv.Atoi(strings.TrimPrefix(e.Name(), "run")); e.IsDir() && err == nil && strings.HasPrefix(e.Name(), "run") && n > 0 {
			nums = append(nums, n)
		}
	}
	sort.Ints(nums)
	var out []extraOnDisk
	for _, n := range nums {
		x := extraOnDisk{dir: filepath.Join(dir, "run"+strconv.Itoa(n))}
		b, err := os.ReadFile(filepath.Join(x.dir, extraRunFile))
		if err != nil {
			return nil, err
		}
		if err := json.Unmarshal(b, &x.run); err != nil {
			return nil, fmt.Errorf("%s: %w", filepath.Join(x.dir, extraRunFile), err)
		}
		if x.cand, err = ReadTrace(TracePath(filepath.Join(x.dir, "traces"), promptID)); err != nil {
			return nil, err
		}
		if x.base, err = ReadTrace(TracePath(filepath.Join(x.dir, "baseline"), promptID)); err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no extra runs (run1/, run2/, ...)", dir)
	}
	return out, nil
}

// policyJSON is a policy as run.json stores it: its name, and its thresholds by stage name
// when it compares sizes, so a custom policy reads back exactly.
type policyJSON struct {
	Name       string                   `json:"name"`
	Tolerance  bool                     `json:"tolerance"`
	Thresholds map[string]thresholdJSON `json:"thresholds,omitempty"`
	Other      *thresholdJSON           `json:"other,omitempty"`
}

type thresholdJSON struct {
	RelL2 float64 `json:"rel_l2"`
	MAE   float64 `json:"mae"`
}

// MarshalJSON writes the policy's name and, for a tolerance policy, every threshold.
func (p Policy) MarshalJSON() ([]byte, error) {
	j := policyJSON{Name: p.Name, Tolerance: p.Tolerance}
	if p.Tolerance {
		j.Thresholds = map[string]thresholdJSON{}
		for _, s := range Stages() {
			t := p.Thresholds[s.Stage]
			j.Thresholds[s.Name] = thresholdJSON{t.RelL2, t.MAE}
		}
		j.Other = &thresholdJSON{p.Other.RelL2, p.Other.MAE}
	}
	return json.Marshal(j)
}

// UnmarshalJSON reads what MarshalJSON writes; a tolerance policy must give every stage.
func (p *Policy) UnmarshalJSON(b []byte) error {
	var j policyJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	q := Policy{Name: j.Name, Tolerance: j.Tolerance}
	if j.Tolerance {
		for _, s := range Stages() {
			t, ok := j.Thresholds[s.Name]
			if !ok {
				return fmt.Errorf("policy %q: no threshold for stage %s", j.Name, s.Name)
			}
			q.Thresholds[s.Stage] = Threshold{t.RelL2, t.MAE}
		}
		if j.Other == nil {
			return errors.New("policy " + strconv.Quote(j.Name) + ": no threshold for other stages")
		}
		q.Other = Threshold{j.Other.RelL2, j.Other.MAE}
	}
	*p = q
	return nil
}

// HasExtraRuns reports whether dir holds extra runs in WriteExtraRun's layout.
func HasExtraRuns(dir string) bool {
	_, err := os.Stat(dir)
	return !errors.Is(err, fs.ErrNotExist)
}
