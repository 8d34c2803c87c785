package ownerr

import (
	"fmt"
	"path/filepath"
	"slices"
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
)

// Key names one row of a run: its stage, its layer as records number it (-1 for embed_out,
// n_layer for logits) and its position.
type Key struct {
	Stage golden.Stage
	Layer int
	Pos   int
}

func (k Key) String() string { return fmt.Sprintf("%s layer %d pos %d", k.Stage, k.Layer, k.Pos) }

// Rows holds raw rows of one run of one prompt, by key. It is safe for concurrent use.
type Rows struct {
	mu   sync.Mutex
	rows map[Key][]float32
	size int // float32 values held
}

// NewRows returns an empty set.
func NewRows() *Rows { return &Rows{rows: map[Key][]float32{}} }

// Put keeps a copy of row under (st, layer, pos), layer as the engine's tap gives it
// (records' numbering is applied here); it has Keep.Put's signature.
func (r *Rows) Put(st golden.Stage, layer, pos int, row []float32) {
	r.put(Key{st, layerOf(st, layer), pos}, slices.Clone(row))
}

func (r *Rows) put(k Key, row []float32) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.size += len(row) - len(r.rows[k])
	r.rows[k] = row
}

// Add puts every row of o into r (o's rows win where both hold one): the rows of several
// runs of one engine on one prompt, for PerOp.
func (r *Rows) Add(o *Rows) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for k, row := range o.rows {
		r.put(k, row)
	}
}

// Row returns the row under k, nil when there is none. It must not be modified.
func (r *Rows) Row(k Key) []float32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rows[k]
}

// Len returns the number of rows held.
func (r *Rows) Len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.rows)
}

// Bytes returns the memory the rows' values take.
func (r *Rows) Bytes() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return 4 * int64(r.size)
}

// layerOf numbers a tap's layer as records do: engines pass n_layer with logits already,
// and any layer with embed_out.
func layerOf(st golden.Stage, layer int) int {
	if st == golden.EmbedOut {
		return -1
	}
	return layer
}

// RowsFromTrace reads the raw rows of recs, records of a trace written with raw tensors
// (each raw_file a .npy relative to dir: the trace's folder, or the rows folder an exec
// engine's rows were kept in): how an external engine's rows reach PerOp. Records without
// a raw_file are skipped. A record whose tensor name is not a stage, whose raw_file leaves
// dir or cannot be read, or whose row does not hash to the record's hash is an error
// naming it.
func RowsFromTrace(dir string, recs []golden.Record) (*Rows, error) {
	rows := NewRows()
	for _, rec := range recs {
		if rec.RawFile == "" {
			continue
		}
		st, ok := golden.StageByName(rec.TensorName)
		if !ok {
			return nil, fmt.Errorf("ownerr: %s: tensor %q is not a stage", golden.KeyOf(rec), rec.TensorName)
		}
		if !filepath.IsLocal(rec.RawFile) {
			return nil, fmt.Errorf("ownerr: %s: raw_file %q is not a path inside %s", golden.KeyOf(rec), rec.RawFile, dir)
		}
		_, data, err := golden.ReadNpyFile(filepath.Join(dir, rec.RawFile))
		if err != nil {
			return nil, fmt.Errorf("ownerr: %s: %w", golden.KeyOf(rec), err)
		}
		if h := golden.HashRow(data); h != rec.Hash {
			return nil, fmt.Errorf("ownerr: %s: raw_file %s hashes to %s, the record says %s", golden.KeyOf(rec), rec.RawFile,
				h, rec.Hash)
		}
		rows.put(Key{st, rec.Layer, rec.PosID}, data)
	}
	return rows, nil
}

// What a run must keep for own errors of a selection (engine.Selection: stages, layers and
// positions compared). Logits are selected with the logits stage, embed_out likewise.
type need int

const (
	needReplayInputs need = 1 << iota // and the residual entering each layer, positions 0..last
	needOpInputs                      // and every input row of the selected rows' operations

	needCompared need = 0 // the selected rows only
)

// KeepForReplay returns the driver.Request.Keep of the reference's run for Replay and Own:
// it holds in rows every selected row, and the residual stream entering each selected layer
// at every position up to the last selected one (the replay's input; for logits, the
// residual leaving the last layer).
func KeepForReplay(rows *Rows, sel *engine.Selection, nLayer int) *driver.Keep {
	return keep(rows, sel, nLayer, needReplayInputs)
}

// KeepForOps returns the driver.Request.Keep of a candidate's run for PerOp: every selected
// row and every row its operation reads (attn_ctx reads the keys and values of every earlier
// position of its layer).
func KeepForOps(rows *Rows, sel *engine.Selection, nLayer int) *driver.Keep {
	return keep(rows, sel, nLayer, needOpInputs)
}

// KeepRows returns the driver.Request.Keep that holds the selected rows only: a candidate's
// normal run, whose rows give the end-to-end errors beside the own errors.
func KeepRows(rows *Rows, sel *engine.Selection, nLayer int) *driver.Keep {
	return keep(rows, sel, nLayer, needCompared)
}

func keep(rows *Rows, sel *engine.Selection, nLayer int, n need) *driver.Keep {
	w := wanted(sel, nLayer, n)
	return &driver.Keep{
		Sel:  w.bounds(),
		Want: func(st golden.Stage, layer, pos int) bool { return w.want(Key{st, layerOf(st, layer), pos}) },
		Put:  rows.Put,
	}
}

// wantSet is the rows a need asks for: the selection, plus rows by key.
type wantSet struct {
	sel    *engine.Selection
	nLayer int
	extra  map[Key]bool
	last   int // the last selected position
}

func wanted(sel *engine.Selection, nLayer int, n need) *wantSet {
	w := &wantSet{sel: sel, nLayer: nLayer, extra: map[Key]bool{}}
	pos := sel.Positions()
	if len(pos) == 0 {
		return w
	}
	w.last = pos[len(pos)-1]
	stages := sel.Stages()
	if n&needReplayInputs != 0 {
		for _, l := range replayLayers(sel, nLayer) {
			for p := 0; p <= w.last; p++ {
				w.extra[inputKey(l, p, nLayer)] = true
			}
		}
	}
	if n&needOpInputs != 0 {
		for _, st := range stages {
			for _, l := range stageLayers(st, sel, nLayer) {
				for _, p := range pos {
					for _, in := range opInputs(st, l, p, nLayer) {
						w.extra[in] = true
					}
				}
			}
		}
	}
	return w
}

func (w *wantSet) want(k Key) bool {
	return w.extra[k] || w.sel.Want(k.Stage, k.Layer, k.Pos)
}

// bounds is the smallest selection holding every wanted row: what the engine computes and
// hands over for want to filter.
func (w *wantSet) bounds() *engine.Selection {
	stages, layers, positions := w.sel.Stages(), w.sel.Layers(), w.sel.Positions()
	for k := range w.extra {
		stages, positions = append(stages, k.Stage), append(positions, k.Pos)
		if k.Stage.Info().PerLayer {
			layers = append(layers, k.Layer)
		}
	}
	return engine.NewSelection(stages, layers, w.nLayer, positions, w.last+1)
}

// replayLayers lists the layers Own replays: the selected ones, and n_layer when logits are
// selected.
func replayLayers(sel *engine.Selection, nLayer int) []int {
	layers := sel.Layers()
	if slices.Contains(sel.Stages(), golden.Logits) {
		layers = append(layers, nLayer)
	}
	return layers
}

// stageLayers lists the layers, as records number them, of the selected rows of st.
func stageLayers(st golden.Stage, sel *engine.Selection, nLayer int) []int {
	if !st.Info().PerLayer {
		return []int{golden.LayerOf(st, 0, nLayer)}
	}
	return sel.Layers()
}

// inputKey is the row a replay of layer l starts from at position p: the residual entering
// l, or for l = n_layer (logits) the residual leaving the last layer.
func inputKey(l, p, nLayer int) Key {
	if l == nLayer {
		return Key{golden.ResidualPostMLP, nLayer - 1, p}
	}
	return Key{golden.ResidualPreAttn, l, p}
}
