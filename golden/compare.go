package golden

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
)

// Status is the outcome of one prompt.
type Status string

// Prompt statuses.
const (
	StatusMatch    Status = "match"    // every record of both sides compared and matched
	StatusDiverged Status = "diverged" // at least one record failed
	// StatusMissing: nothing compared failed, but records (or the whole trace) of one side
	// have no counterpart on the other.
	StatusMissing Status = "missing"
	// StatusCrash and StatusHang: the candidate's run ended early (it exited with an error or
	// was killed; it hung until a timeout killed it) and nothing it wrote before diverged.
	StatusCrash Status = "crash"
	StatusHang  Status = "hang"
)

// Failure reasons.
const (
	ReasonHash      = "hash"      // hash or nz_count differs (exact policy, or no size known)
	ReasonTolerance = "tolerance" // rel_l2 or MAE above the stage's threshold
	ReasonToken     = "token"     // the input token differs at this position
	ReasonShape     = "shape"     // the rows differ in length
)

// Failure is one failing record, or the input divergence a token_id difference implies.
type Failure struct {
	Key
	Category        Category
	Reason          string
	TokenID         int // candidate's input token at PosID
	BaselineTokenID int
	Hash            string // candidate's; "" when no embed_out record was traced here
	BaselineHash    string
	HashMatch       bool
	Diff            *Diff // nil when unknown: no sketch or raw tensor on both sides
	FirstFail       bool
	// Own is the record's own error under the replay policy (Reason ReasonOwn when over its
	// floor); Diff is then its end-to-end error, when known. nil under the other policies.
	Own *OwnError
}

// PromptResult is the comparison of one prompt.
type PromptResult struct {
	PromptID   string
	Status     Status
	Compared   int // records present on both sides, in the planned trace and any extra run
	Mismatched int // failing records (Failures), input divergences included
	// MissingInCandidate lists baseline keys the candidate lacks; MissingInBaseline the
	// reverse. Both are in causal order.
	MissingInCandidate []Key
	MissingInBaseline  []Key
	Failures           []Failure // causal order
	// FirstFail is the first of Failures: the FIRST_FAIL. Once extra runs are merged in
	// (Merge), it is the isolated origin, which may lie outside the planned trace.
	FirstFail *Failure
	// FirstTraced is the first failure of the planned trace alone; nil unless diverged. It is
	// FirstFail until an extra run finds an earlier divergence.
	FirstTraced *Failure
	// Extra lists the extra runs merged in, in the order they ran.
	Extra           []ExtraRun
	HashOnly        int    // differing records a tolerance policy compared by hash: no size known
	WithinTolerance int    // records whose hashes differ but a tolerance policy accepted
	Crash           *Crash // how the candidate's run ended early; nil when it did not
	// Shape describes the divergence at its isolated origin (DiagnoseShape); nil when none
	// was diagnosed. Reports render it.
	Shape *Shape
	// Own holds the own errors of the replay policy (SetOwn); nil under the other policies.
	Own *OwnResult

	grid     map[cellKey]*cell  // heatmap cells
	ownGrid  map[cellKey]*cell  // the own-error heatmap's cells (SetOwn)
	nLayer   int                // the layer logits records carry (n_layer), 0 when none
	compared map[Key]bool       // keys compared so far, so an extra run adds only new ones
	order    func(a, b Key) int // the prompt's causal order
}

// Missing returns the number of records present on one side only.
func (p *PromptResult) Missing() int { return len(p.MissingInCandidate) + len(p.MissingInBaseline) }

// Report is the comparison of a candidate trace set with a baseline.
type Report struct {
	Policy  Policy
	Prompts []*PromptResult // by prompt id
	Notes   []string        // things the reader must know, each said once
}

// OK reports whether every prompt matched.
func (r *Report) OK() bool {
	for _, p := range r.Prompts {
		if p.Status != StatusMatch {
			return false
		}
	}
	return true
}

// CategoryCounts returns how many prompts have their FIRST_FAIL in each category, in the
// order of Categories.
func (r *Report) CategoryCounts() []int {
	counts := make([]int, len(Categories))
	for _, p := range r.Prompts {
		if p.FirstFail != nil {
			i := slices.Index(Categories, p.FirstFail.Category)
			if i < 0 {
				i = len(Categories) - 1 // UNKNOWN
			}
			counts[i]++
		}
	}
	return counts
}

// CompareRecords compares records held in memory (they may span several prompts); raw_file
// fields are not read. See Compare.
func CompareRecords(candidate, baseline []Record, p Policy) (*Report, error) {
	return Compare(groupByPrompt(candidate), groupByPrompt(baseline), p)
}

func groupByPrompt(records []Record) []*Trace {
	var traces []*Trace
	byID := map[string]*Trace{}
	for _, rec := range records {
		t := byID[rec.PromptID]
		if t == nil {
			t = &Trace{PromptID: rec.PromptID}
			byID[rec.PromptID] = t
			traces = append(traces, t)
		}
		t.Records = append(t.Records, rec)
	}
	return traces
}

// Compare compares candidate traces with baseline traces, prompt by prompt, key by key.
// A prompt on one side only is reported with status missing. Raw tensors (raw_file, read
// beside a trace's Path) give exact sizes, else sketches give estimates. It is an error to
// compare zero records, to pass two traces of one prompt on one side, or a trace with a key
// twice.
func Compare(candidate, baseline []*Trace, p Policy) (*Report, error) {
	cand, err := indexTraces(candidate, "candidate")
	if err != nil {
		return nil, err
	}
	base, err := indexTraces(baseline, "baseline")
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(base)+len(cand))
	for id := range base {
		ids = append(ids, id)
	}
	for id := range cand {
		if _, ok := base[id]; !ok {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	rep := &Report{Policy: p}
	compared, hashOnly, nCand, nBase := 0, 0, 0, 0
	for _, id := range ids {
		pr, err := comparePrompt(id, cand[id], base[id], p)
		if err != nil {
			return nil, err
		}
		rep.Prompts = append(rep.Prompts, pr)
		compared += pr.Compared
		hashOnly += pr.HashOnly
		nCand += cand[id].size()
		nBase += base[id].size()
	}
	if compared == 0 {
		return nil, fmt.Errorf("compared zero records: no key of the %d candidate records matches one of the %d baseline records", nCand, nBase)
	}
	if hashOnly > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf(
			"%s policy: %d differing records (of %d compared) carry no sketch or raw tensor on both sides: they were compared by hash (exact) and their MAE is n/a",
			p.Name, hashOnly, compared))
	}
	return rep, nil
}

// indexed is one side's trace of a prompt with its records by key.
type indexed struct {
	trace *Trace
	byKey map[Key]int
}

func (ix *indexed) size() int {
	if ix == nil {
		return 0
	}
	return len(ix.trace.Records)
}

func indexTraces(traces []*Trace, side string) (map[string]*indexed, error) {
	m := make(map[string]*indexed, len(traces))
	for _, t := range traces {
		if prev, dup := m[t.PromptID]; dup {
			return nil, fmt.Errorf("%s: two traces of prompt %q (%s and %s)", side, t.PromptID, where(prev.trace), where(t))
		}
		ix := &indexed{trace: t, byKey: make(map[Key]int, len(t.Records))}
		for i, rec := range t.Records {
			if rec.PromptID != t.PromptID {
				return nil, fmt.Errorf("%s: %s: record %d has prompt_id %q", side, where(t), i+1, rec.PromptID)
			}
			k := KeyOf(rec)
			if j, dup := ix.byKey[k]; dup {
				return nil, fmt.Errorf("%s: %s: duplicate key %s (records %d and %d)", side, where(t), k, j+1, i+1)
			}
			ix.byKey[k] = i
		}
		m[t.PromptID] = ix
	}
	return m, nil
}

func where(t *Trace) string {
	if t.Path != "" {
		return t.Path
	}
	return "trace " + t.PromptID + " (in memory)"
}

func comparePrompt(id string, cand, base *indexed, p Policy) (*PromptResult, error) {
	pr := &PromptResult{PromptID: id, grid: map[cellKey]*cell{}, compared: map[Key]bool{}}
	pr.order = CausalOrder(decodeStart(cand, base))
	if _, _, _, err := pr.compareSide(cand, base, p, true); err != nil {
		return nil, err
	}
	if cand != nil {
		for _, c := range cand.trace.Records {
			k := KeyOf(c)
			if _, ok := base.lookup(k); !ok {
				pr.MissingInBaseline = append(pr.MissingInBaseline, k)
				pr.cellAt(k).missing++
			}
		}
	}
	slices.SortStableFunc(pr.MissingInCandidate, pr.order)
	slices.SortStableFunc(pr.MissingInBaseline, pr.order)
	pr.settle(pr.grid)
	if pr.FirstFail != nil {
		first := *pr.FirstFail
		pr.FirstTraced = &first
	}
	switch {
	case pr.Mismatched > 0:
		pr.Status = StatusDiverged
	case pr.Missing() > 0:
		pr.Status = StatusMissing
	default:
		pr.Status = StatusMatch
	}
	return pr, nil
}

// compareSide compares every baseline record that the candidate also holds and adds what it
// finds to pr, skipping keys pr already compared. With missing set it lists the baseline
// keys the candidate lacks. It returns how many records of this pair were compared and
// failed (input divergences included) and the first failure among them in pr's causal
// order (nil when none failed), whether or not pr had compared them before.
func (pr *PromptResult) compareSide(cand, base *indexed, p Policy, missing bool) (compared, failed int, first *Failure, err error) {
	if base == nil {
		return 0, 0, nil, nil
	}
	failedHere := map[Key]bool{}
	note := func(f Failure) {
		if failedHere[f.Key] {
			return // an input divergence on a record that failed anyway
		}
		failedHere[f.Key] = true
		failed++
		if first == nil || pr.order(f.Key, first.Key) <= 0 {
			first = &f
		}
	}
	tokenDiv := map[int]Failure{}    // input divergences by position
	passedEmbed := map[Key]Failure{} // embed_out records that matched
	for _, b := range base.trace.Records {
		k := KeyOf(b)
		ci, ok := cand.lookup(k)
		if !ok {
			if missing {
				pr.MissingInCandidate = append(pr.MissingInCandidate, k)
				pr.cellAt(k).missing++
			}
			continue
		}
		c := &cand.trace.Records[ci]
		compared++
		f, err := compareRecord(c, &b, cand.trace, base.trace, p)
		if err != nil {
			return 0, 0, nil, err
		}
		if c.TokenID != b.TokenID {
			if _, seen := tokenDiv[k.PosID]; !seen {
				tokenDiv[k.PosID] = Failure{
					Key:      Key{pr.PromptID, k.PosID, -1, EmbedOut.String()},
					Category: EmbedOut.Category(), Reason: ReasonToken,
					TokenID: c.TokenID, BaselineTokenID: b.TokenID,
				}
			}
		}
		if f.Reason != "" {
			note(f)
		}
		if pr.compared[k] {
			continue
		}
		pr.compared[k] = true
		pr.Compared++
		if p.Tolerance && f.Reason == ReasonHash {
			pr.HashOnly++ // a tolerance policy only compares hashes when no size is known
		}
		if f.Reason == "" && !f.HashMatch {
			pr.WithinTolerance++
		}
		pr.cellAt(k).add(f)
		switch {
		case f.Reason != "":
			pr.Failures = append(pr.Failures, f)
		case k.TensorName == EmbedOut.String():
			passedEmbed[k] = f
		}
	}
	// An input divergence lands on the embed_out record of its position when one was
	// traced, and stands alone otherwise.
	for _, td := range tokenDiv {
		note(td)
		if i := slices.IndexFunc(pr.Failures, func(f Failure) bool { return f.Key == td.Key }); i >= 0 {
			f := &pr.Failures[i]
			f.Reason, f.TokenID, f.BaselineTokenID = ReasonToken, td.TokenID, td.BaselineTokenID
			continue
		}
		if f, ok := passedEmbed[td.Key]; ok {
			f.Reason, f.TokenID, f.BaselineTokenID = ReasonToken, td.TokenID, td.BaselineTokenID
			td = f
		}
		pr.Failures = append(pr.Failures, td)
		pr.cellAt(td.Key).failed++
	}
	return compared, failed, first, nil
}

// settle sorts the failures in causal order, makes the first one the FIRST_FAIL and outlines
// its cell in grid (the heatmap that shows it), no other.
func (pr *PromptResult) settle(grid map[cellKey]*cell) {
	slices.SortStableFunc(pr.Failures, func(a, b Failure) int { return pr.order(a.Key, b.Key) })
	pr.Mismatched = len(pr.Failures)
	pr.FirstFail = nil
	for i := range pr.Failures {
		pr.Failures[i].FirstFail = i == 0
	}
	for _, g := range []map[cellKey]*cell{pr.grid, pr.ownGrid} {
		for _, c := range g {
			c.first = false
		}
	}
	if len(pr.Failures) > 0 {
		pr.FirstFail = &pr.Failures[0]
		if c := grid[pr.cellKeyOf(pr.FirstFail.Key)]; c != nil {
			c.first = true
		}
	}
	if pr.FirstTraced != nil {
		pr.FirstTraced.FirstFail = pr.FirstFail != nil && pr.FirstTraced.Key == pr.FirstFail.Key
	}
}

// decodeStart is where generation starts, from the baseline (the reference for what was
// prompt and what was generated), else from the candidate.
func decodeStart(cand, base *indexed) int {
	for _, ix := range []*indexed{base, cand} {
		if ix != nil {
			if s := DecodeStart(ix.trace.Records); s >= 0 {
				return s
			}
		}
	}
	return -1
}

func (ix *indexed) lookup(k Key) (int, bool) {
	if ix == nil {
		return 0, false
	}
	i, ok := ix.byKey[k]
	return i, ok
}

// compareRecord decides one key. The returned Failure has an empty Reason when the
// candidate matches.
func compareRecord(c, b *Record, ct, bt *Trace, p Policy) (Failure, error) {
	f := Failure{
		Key: KeyOf(*c), Category: Classify(c.TensorName),
		TokenID: c.TokenID, BaselineTokenID: b.TokenID,
		Hash: c.Hash, BaselineHash: b.Hash, HashMatch: c.Hash == b.Hash,
	}
	if f.HashMatch && c.NZCount == b.NZCount {
		f.Diff = &Diff{Exact: true} // identical rows
		return f, nil
	}
	d, err := size(c, b, ct, bt)
	if errors.Is(err, errRowLength) {
		f.Reason = ReasonShape
		return f, nil
	}
	if err != nil {
		return f, err
	}
	f.Diff = d
	switch {
	case !p.Tolerance || d == nil:
		f.Reason = ReasonHash
	case !(d.RelL2 <= p.threshold(c.TensorName).RelL2 && d.MAE <= p.threshold(c.TensorName).MAE):
		f.Reason = ReasonTolerance // NaN fails too
	}
	return f, nil
}

var errRowLength = errors.New("row lengths differ")

// size measures the difference of two records: exactly from raw tensors when both have one
// and both traces come from files, else from sketches when both have one, else nil.
func size(c, b *Record, ct, bt *Trace) (*Diff, error) {
	if c.RawFile != "" && b.RawFile != "" && ct.Path != "" && bt.Path != "" {
		x, err := readRaw(c, ct)
		if err != nil {
			return nil, err
		}
		y, err := readRaw(b, bt)
		if err != nil {
			return nil, err
		}
		if len(x) != len(y) {
			return nil, errRowLength
		}
		d, _ := ExactDiff(x, y)
		return &d, nil
	}
	if c.Sketch != nil && b.Sketch != nil {
		if c.Sketch.N != b.Sketch.N {
			return nil, errRowLength
		}
		d, err := c.Sketch.Estimate(b.Sketch)
		if err != nil {
			return nil, nil // sketches of another version: no size, compared by hash
		}
		return &d, nil
	}
	return nil, nil
}

func readRaw(r *Record, t *Trace) ([]float32, error) {
	if !filepath.IsLocal(r.RawFile) {
		return nil, fmt.Errorf("%s: record %s: raw_file %q must be a path inside the trace's folder", t.Path, KeyOf(*r), r.RawFile)
	}
	_, data, err := ReadNpyFile(filepath.Join(filepath.Dir(t.Path), r.RawFile))
	if err != nil {
		return nil, fmt.Errorf("%s: record %s: raw_file: %w", t.Path, KeyOf(*r), err)
	}
	return data, nil
}
