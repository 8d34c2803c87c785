package trace

import (
	"fmt"
	"math/bits"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"sync"
	"time"

	"github.com/gretabisect/gretabisect/golden"
)

// EnvGitCommit overrides the git commit recorded in every record.
const EnvGitCommit = "GRETA_GIT_COMMIT"

// Recorder turns the rows a Tap hands over into golden records. Sink (or SinkSketched, for
// rows whose sketch a device computed) copies each row and fills the fields known at call
// time; a pool of workers hashes, counts, sketches and (optionally) writes the copies, so the
// forward pass does not wait for SHA-256. Sink and SinkSketched may be called from several
// goroutines at once. Records come out of Close in causal order whatever the timing.
type Recorder struct {
	// Route names the path computing the rows handed over next (golden.RoutePrefill or
	// golden.RouteDecode); Tokens holds the input token at each position so far. The
	// driver updates both between Forward calls.
	Route  string
	Tokens []int32

	promptID string
	nPrompt  int
	nLayer   int
	rawDir   string
	commit   string

	jobs chan *pending
	wg   sync.WaitGroup

	mu   sync.Mutex
	recs []*pending
	err  error // first raw-file error
}

type pending struct {
	rec   golden.Record
	stage golden.Stage
	row   *[]float32 // a copy from rowPools, returned once hashed
}

// rowPools recycle the row copies by capacity class (powers of two): a traced prompt hands
// over tens of megabytes of rows, and fresh copies would make the garbage collector run,
// and assist, in the middle of the forward pass being timed.
var rowPools [64]sync.Pool

func copyRow(row []float32) *[]float32 {
	class := bits.Len(uint(max(len(row), 1) - 1))
	p, _ := rowPools[class].Get().(*[]float32)
	if p == nil {
		s := make([]float32, 0, 1<<class)
		p = &s
	}
	*p = append((*p)[:0], row...)
	return p
}

func releaseRow(p *[]float32) { rowPools[bits.Len(uint(cap(*p)-1))].Put(p) }

// NewRecorder starts a recorder for one prompt of nPrompt tokens on a model of nLayer
// layers. When rawDir is not empty every row is also written there as a .npy file and the
// record's raw_file names it (relative to rawDir). Call Close exactly once.
func NewRecorder(promptID string, nPrompt, nLayer int, rawDir string) *Recorder {
	r := &Recorder{
		Route:    golden.RoutePrefill,
		promptID: promptID,
		nPrompt:  nPrompt,
		nLayer:   nLayer,
		rawDir:   rawDir,
		commit:   GitCommit(),
		jobs:     make(chan *pending, 256),
	}
	n := runtime.GOMAXPROCS(0)
	r.wg.Add(n)
	for range n {
		go r.work()
	}
	return r
}

// Sink has the signature of Tap.Sink.
func (r *Recorder) Sink(st golden.Stage, layer, pos int, row []float32) {
	r.sink(st, layer, pos, row, nil)
}

// SinkSketched has the signature of Tap.SketchSink: the record takes sk instead of a
// sketch computed here, unless sk is nil or of another row length.
func (r *Recorder) SinkSketched(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch) {
	if sk != nil && sk.N != len(row) {
		sk = nil
	}
	r.sink(st, layer, pos, row, sk)
}

func (r *Recorder) sink(st golden.Stage, layer, pos int, row []float32, sk *golden.Sketch) {
	tok := -1
	if pos < len(r.Tokens) {
		tok = int(r.Tokens[pos])
	}
	p := &pending{
		stage: st,
		row:   copyRow(row),
		rec: golden.Record{
			PromptID:      r.promptID,
			TokenID:       tok,
			PosID:         pos,
			LogicalTokIdx: pos,
			Phase:         Phase(pos, r.nPrompt),
			Layer:         golden.LayerOf(st, layer, r.nLayer),
			TensorName:    st.String(),
			Route:         r.Route,
			Timestamp:     time.Now().UTC().Format(time.RFC3339),
			GitCommitHash: r.commit,
			Shape:         []int{len(row)},
			DType:         "float32",
			Sketch:        sk,
		},
	}
	r.mu.Lock()
	r.recs = append(r.recs, p)
	r.mu.Unlock()
	r.jobs <- p
}

func (r *Recorder) work() {
	defer r.wg.Done()
	for p := range r.jobs {
		row := *p.row
		p.rec.Hash = golden.HashRow(row)
		p.rec.NZCount = golden.NonZero(row)
		if p.rec.Sketch == nil {
			p.rec.Sketch = golden.NewSketch(row)
		}
		if p.stage == golden.Logits {
			p.rec.Top5Tokens = Top5(row)
		}
		if r.rawDir != "" {
			name := fmt.Sprintf("%s.%s.L%d.%s.P%d.npy", p.rec.PromptID, p.rec.Route, p.rec.Layer, p.rec.TensorName, p.rec.PosID)
			if err := golden.WriteNpyFile(filepath.Join(r.rawDir, name), nil, row); err != nil {
				r.fail(fmt.Errorf("trace: raw tensor %s: %w", name, err))
			}
			p.rec.RawFile = name
		}
		releaseRow(p.row)
		p.row = nil
	}
}

func (r *Recorder) fail(err error) {
	r.mu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.mu.Unlock()
}

// Close waits for the workers and returns the records in causal order (golden.CausalCompare).
func (r *Recorder) Close() ([]golden.Record, error) {
	close(r.jobs)
	r.wg.Wait()
	out := make([]golden.Record, len(r.recs))
	for i, p := range r.recs {
		out[i] = p.rec
	}
	golden.SortCausal(out)
	return out, r.err
}

// Phase names the phase of position pos of a prompt of nPrompt tokens.
func Phase(pos, nPrompt int) string {
	switch {
	case pos < nPrompt-1:
		return golden.PhasePrefill
	case pos == nPrompt-1:
		return golden.PhasePrefillLast
	}
	return golden.PhaseDecode
}

// Top5 returns the ids of the five largest values of logits, highest first, ties broken by
// the lower id; NaN ranks below everything.
func Top5(logits []float32) []int {
	top := make([]int, 0, 5)
	var fifth float32 // logits[top[4]] once top is full
	for i, x := range logits {
		// above(x, i, fifth, top[4]) without the call, ids ascending: x ranks above the
		// fifth when larger, or when the fifth is NaN and x is not.
		if len(top) == 5 && !(x > fifth) && (fifth == fifth || x != x) {
			continue
		}
		j := len(top)
		if j < 5 {
			top = append(top, i)
		} else {
			j = 4
		}
		for j > 0 && above(x, i, logits[top[j-1]], top[j-1]) {
			top[j] = top[j-1]
			j--
		}
		top[j] = i
		if len(top) == 5 {
			fifth = logits[top[4]]
		}
	}
	return top
}

// above orders (value, id) pairs: larger value first, then lower id, NaN last.
func above(a float32, ia int, b float32, ib int) bool {
	an, bn := a != a, b != b
	switch {
	case an != bn:
		return bn
	case !an && a != b:
		return a > b
	}
	return ia < ib
}

// GitCommit is the commit recorded in records: GRETA_GIT_COMMIT when set, else the
// vcs.revision stamped into the binary, else "".
func GitCommit() string {
	if c := os.Getenv(EnvGitCommit); c != "" {
		return c
	}
	return buildRevision()
}

// buildRevision parses the binary's build information once: every recorder asks.
var buildRevision = sync.OnceValue(func() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return ""
})
