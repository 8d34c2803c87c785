package golden

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// Verdicts of runs that ended early. They are not root-cause categories of a divergence
// (nothing diverged, or not yet): the Root Cause Summary counts them in rows of their own
// after the seven categories.
const (
	Crashed Category = "CRASH"
	Hung    Category = "HANG"
)

// Crash is how a run ended before its trace was complete: the engine exited with an error
// or was killed (a crash), or did not exit before a timeout and was killed (a hang). A
// tracer returns it as the error beside the records written before the end; Locate then
// says where in the plan the run stopped.
type Crash struct {
	Hang   bool   // killed after a timeout, not exited
	Reason string // one line: how the run ended, with the engine's last words
	Log    string // the file holding the run's output; "" when none was kept

	Planned int  // records the plan asked for
	Written int  // planned records written before the end
	Last    *Key // the last planned record written; nil when none was
	Next    *Key // the first planned record missing after Last; nil when none is

	reached map[Key]bool // planned keys up to Last, and every key written
}

// Error returns the reason, so that a Crash can travel as an error.
func (c *Crash) Error() string { return c.Reason }

// Category is Crashed or Hung.
func (c *Crash) Category() Category {
	if c.Hang {
		return Hung
	}
	return Crashed
}

// Locate finds where a run that wrote the records written stopped in its plan: planned
// lists the planned keys in the order the engine computes them (CausalOrder of the route),
// written the records in the order they were written. The run got at least as far as Last,
// the last planned record it wrote; Next is the first planned record after Last that is
// missing. So an engine that writes in another order (a chunked prefill writes every layer
// of its first positions before the next chunk's first layer) still stops after the last
// record it wrote.
func (c *Crash) Locate(planned []Key, written []Record) {
	index := make(map[Key]int, len(planned))
	for i, k := range planned {
		index[k] = i
	}
	have := make(map[Key]bool, len(written))
	last := -1
	for _, r := range written {
		k := KeyOf(r)
		if i, ok := index[k]; ok {
			have[k] = true
			last = i
		}
	}
	c.Planned, c.Written = len(planned), len(have)
	c.Last, c.Next = nil, nil
	if last >= 0 {
		c.Last = &planned[last]
	}
	next := len(planned)
	for i := last + 1; i < len(planned); i++ {
		if !have[planned[i]] {
			next = i
			break
		}
	}
	if next < len(planned) {
		c.Next = &planned[next]
	}
	c.reached = have
	for _, k := range planned[:next] {
		c.reached[k] = true
	}
}

// Reached reports whether the run got to the record of key k: k was written, or comes
// before the point where the run stopped. A baseline's records beyond it are not missing
// from the candidate: the candidate never got there.
func (c *Crash) Reached(k Key) bool { return c.reached[k] }

// Line is the one-line verdict:
//
//	p0_short: CRASH after layer 0 residual_pre_attn pos 4, before attn_in pos 0, the attention RMSNorm (exit status 1: RMSNorm (Attn) launch failed: an illegal memory access was encountered; 10 of 1230 planned records written; log artifacts/2026-01-02/b3_61/run/p0_short.log)
//
// The record before names what was missing first by what differs from the last one
// written (stage; layer and position when they differ) and by its stage's role. A hang
// says HANG.
func (c *Crash) Line(promptID string) string {
	var where string
	switch {
	case c.Next == nil && c.Last == nil:
		where = "with nothing planned"
	case c.Next == nil:
		where = "after the last planned record, " + describeKey(*c.Last, nil)
	case c.Last == nil:
		where = "before the first planned record, " + describeKey(*c.Next, nil) + role(*c.Next)
	default:
		where = "after " + describeKey(*c.Last, nil) + ", before " + describeKey(*c.Next, c.Last) + role(*c.Next)
	}
	details := []string{c.Reason, fmt.Sprintf("%d of %s written", c.Written, plural(c.Planned, "planned record"))}
	if c.Log != "" {
		details = append(details, "log "+c.Log)
	}
	return fmt.Sprintf("%s: %s %s (%s)", promptID, c.Category(), where, strings.Join(details, "; "))
}

// describeKey writes k as "layer 0 attn_in pos 3" ("embed_out pos 3" outside the layers),
// leaving out the layer and position that k shares with prev when prev is not nil.
func describeKey(k Key, prev *Key) string {
	st, known := StageByName(k.TensorName)
	perLayer := !known || st.Info().PerLayer
	var parts []string
	if perLayer && (prev == nil || prev.Layer != k.Layer) {
		parts = append(parts, fmt.Sprintf("layer %d", k.Layer))
	}
	parts = append(parts, k.TensorName)
	if prev == nil || prev.PosID != k.PosID {
		parts = append(parts, fmt.Sprintf("pos %d", k.PosID))
	}
	return strings.Join(parts, " ")
}

// role is ", " and the role of k's stage, or "" for a name outside the table.
func role(k Key) string {
	if st, ok := StageByName(k.TensorName); ok {
		return ", " + st.Info().Role
	}
	return ""
}

// SetCrash records that the candidate's run ended early. The prompt's status becomes crash
// or hang, unless a record written before the end diverged: that stays its FIRST_FAIL.
func (p *PromptResult) SetCrash(c *Crash) {
	p.Crash = c
	if p.Status == StatusDiverged {
		return
	}
	p.Status = StatusCrash
	if c.Hang {
		p.Status = StatusHang
	}
}

// CrashResult is the result of a prompt whose run ended before it wrote a record that could
// be compared.
func CrashResult(promptID string, c *Crash) *PromptResult {
	p := &PromptResult{PromptID: promptID, grid: map[cellKey]*cell{}, compared: map[Key]bool{}, order: CausalOrder(-1)}
	p.SetCrash(c)
	return p
}

// ReadCrashedTrace reads what a run that ended early left at path. Unlike ReadTrace it
// accepts a missing or empty file (no records) and drops a last line that was cut short
// (no newline and not a whole JSON value), reporting cut. Anything else wrong is an error,
// as in ReadTrace.
func ReadCrashedTrace(path string) (t *Trace, cut bool, err error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return &Trace{Path: path}, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if n := len(data); n > 0 && data[n-1] != '\n' {
		start := bytes.LastIndexByte(data, '\n') + 1
		if !json.Valid(data[start:]) {
			data, cut = data[:start], true
		}
	}
	t, err = readRecords(bytes.NewReader(data), path, "")
	return t, cut, err
}

// causeRow is a row of the Root Cause Summary.
type causeRow struct {
	Category Category
	Count    int
	Percent  string // of the prompts that diverged or ended early
}

// rootCauses is the Root Cause Summary: the FIRST_FAILs per category, then the runs that
// ended early without a divergence before (CRASH, HANG), each row only when one did.
func (r *Report) rootCauses() []causeRow {
	counts := r.CategoryCounts()
	cats := Categories
	var crashed, hung int
	for _, p := range r.Prompts {
		switch p.Status {
		case StatusCrash:
			crashed++
		case StatusHang:
			hung++
		}
	}
	for _, extra := range []struct {
		cat Category
		n   int
	}{{Crashed, crashed}, {Hung, hung}} {
		if extra.n > 0 {
			cats = append(cats[:len(cats):len(cats)], extra.cat)
			counts = append(counts, extra.n)
		}
	}
	total := 0
	for _, c := range counts {
		total += c
	}
	rows := make([]causeRow, len(cats))
	for i, c := range cats {
		rows[i] = causeRow{c, counts[i], percent(counts[i], total)}
	}
	return rows
}
