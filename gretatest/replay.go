package gretatest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/ownerr"
)

// The replay policy (golden.Replay) judges a backend by each record's own error: the rows
// its layer computes from the reference's inputs (layer replay), against the reference's rows
// of the same run, with a calibrated noise floor per (stage, layer) and a factor
// (ownerr.Factor). It is the default when the backend can replay (engine.Replayer) and its
// baseline is another device: a kernel wrong by 1e-4 stands two orders of magnitude above
// float32 noise there, where the end-to-end tolerance (rel_l2 1e-3) has to sit above the
// drift that grows through the layers and misses it.
//
// Every layer is replayed at the planned positions, so the first record over its floor is
// found directly: a layer is clean when its own error is within its floor, whatever it
// inherited, and replaying each layer once costs one forward pass of the backend, no more
// than a bisection of layer ranges would and without mixing the noise of several layers.
// When that record could have been caused at an earlier position (an attention stage, or
// an untraced position before it), its layer is replayed at every position up to it.

// ownTracer is what the replay policy needs of a backend: an in-process engine that can
// replay, taken in turns with its other runs.
func (s *session) replayer() (*engineTracer, bool) {
	t, ok := s.cut.(*engineTracer)
	if !ok {
		return nil, false
	}
	_, ok = t.e.(engine.Replayer)
	return t, ok
}

// ownReference opens the reference backend (Reference, default "cpu"): the one whose goldens
// stand in for a device without its own, and whose rows own errors are measured against;
// never the backend under test, which a rehearsal with injected faults uses as its live
// baseline instead.
func (s *session) ownReference() (*engineTracer, error) {
	s.ownOnce.Do(func() {
		name := DefaultReference
		if s.cfg.refSet {
			name = s.cfg.reference
		}
		t, err := s.cfg.openTracer(name, s.m)
		if err != nil {
			s.ownErr = fmt.Errorf("replay policy: reference backend %q: %w", name, err)
			return
		}
		et, ok := t.(*engineTracer)
		if !ok {
			t.Close()
			s.ownErr = fmt.Errorf("replay policy: reference backend %q is not an in-process engine", name)
			return
		}
		s.ownRef = et
	})
	return s.ownRef, s.ownErr
}

// keepRun runs r on t, handing the rows keep asks for beside the records.
func (t *engineTracer) keepRun(r run, keep *driver.Keep, progress func(done, total int)) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := driver.Run(t.e, t.m, driver.Request{PromptID: r.prompt.ID, Tokens: r.tokens, Plan: r.plan, Faults: r.faults,
		Keep: keep, Progress: progress})
	return err
}

// floors reads the measured noise floors of the device under test on this model
// (<golden>/<device>/<model>/noise.json), nil when there are none, and says where they came
// from.
func (s *session) floors() (*ownerr.Floors, string, error) {
	path := ownerr.NoisePath(s.goldenRoot(), s.cut.Device(), s.modelName)
	f, err := ownerr.ReadFloorsFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Sprintf("the default formula (%g x 2^-24 x sqrt(reduction length); no %s)", float64(ownerr.DefaultC), path), nil
	case err != nil:
		return nil, "", err
	}
	return f, path, nil
}

// ownRecords measures the own errors of r's rows at sel: the reference's run keeping the
// replay inputs and its rows (once per prompt, plan and selection in the session's Cache),
// the backend's rows of its run (candRows, when its planned run kept them; else a run that
// keeps them), and the replay of every layer sel names.
func (s *session) ownRecords(r run, sel *engine.Selection, candRows *ownerr.Rows) ([]ownerr.Record, error) {
	cut, _ := s.replayer()
	ref, err := s.ownReference()
	if err != nil {
		return nil, err
	}
	nLayer := s.m.Config.NLayer
	clean := r
	clean.faults, clean.keep = nil, nil
	key := fmt.Sprintf("%s|%v|%v|%v", runKey(ref.Device(), s.cfg.model, clean), sel.Stages(), sel.Layers(), sel.Positions())
	refRows, err := lookup(s.cfg.cache, s.cfg.cache.rows, key, func() (*ownerr.Rows, error) {
		rows := ownerr.NewRows()
		if err := ref.keepRun(clean, ownerr.KeepForReplay(rows, sel, nLayer), s.progress(clean)); err != nil {
			return nil, fmt.Errorf("replay policy: the reference's run: %w", err)
		}
		return rows, nil
	})
	if err != nil {
		return nil, err
	}
	if candRows == nil {
		candRows = ownerr.NewRows()
		if err := cut.keepRun(r, ownerr.KeepRows(candRows, sel, nLayer), s.progress(r)); err != nil {
			return nil, fmt.Errorf("replay policy: the backend's run: %w", err)
		}
	}
	faults, err := engine.ResolveFaults(r.faults, s.m.Config.HeadDim, s.m.Config.StageWidth)
	if err != nil {
		return nil, err
	}
	cut.mu.Lock()
	defer cut.mu.Unlock()
	recs, err := ownerr.Own(cut.e.(engine.Replayer), ownerr.Run{Config: s.m.Config, Rows: refRows, Prompt: len(r.tokens)},
		sel, ownerr.Options{Faults: faults, Candidate: candRows})
	if err != nil {
		return nil, fmt.Errorf("replay policy: %w", err)
	}
	return recs, nil
}

// everyLayer is plan traced in every layer: the rows the replay policy judges.
func (s *session) everyLayer(r run) *engine.Selection {
	all := r.plan
	all.Layers, all.AllLayers = nil, true
	return all.Resolve(s.m.Config.NLayer, len(r.tokens))
}

// expectReplay reports whether the prompt will be judged by the replay policy, before its
// planned run, so that the run can keep the backend's rows the policy reads.
func (s *session) expectReplay(device, promptID string) bool {
	if _, ok := s.replayer(); !ok || (s.cfg.policy != nil && !s.cfg.policy.Own) || s.cfg.calibrate {
		return false
	}
	if s.cfg.live {
		return s.cfg.reference != s.cfg.backend
	}
	_, err := os.Stat(s.goldenPath(device, promptID))
	return errors.Is(err, fs.ErrNotExist)
}

// judgeOwn measures the own errors of prompt r under the replay policy and makes them the
// verdict of pr's result (golden.PromptResult.SetOwn), with the steps it took as pr.Origin.
// candRows are the backend's rows its planned run kept (nil: none).
func (s *session) judgeOwn(pr *PromptReport, r run, candRows *ownerr.Rows) error {
	c := s.m.Config
	planned := s.everyLayer(r)
	recs, err := s.ownRecords(r, planned, candRows)
	if err != nil {
		return err
	}
	floors, source, err := s.floors()
	if err != nil {
		return err
	}
	o := &Origin{}
	first := floors.FirstOver(c, recs, ownerr.Factor)
	o.Steps = append(o.Steps, "every layer replayed on the reference's inputs at the planned positions: "+ownFinding(first))
	recs, first, err = s.searchEarlier(r, o, floors, planned, recs, first, func(layer, last int) ([]ownerr.Record, string, error) {
		// Every position of the layer, not only up to last: the reference's rows of one
		// layer then serve every case that searches it (they are cached by selection).
		n := len(r.tokens) + r.plan.MaxNewTokens
		more, err := s.ownRecords(r, layerUpTo(c, layer, n-1, n), nil)
		return more, fmt.Sprintf("layer %d replayed at every position (the first over its floor was at %d)", layer, last), err
	})
	if err != nil {
		return err
	}
	s.settleOwn(pr, o, ownerr.MethodReplay, floors, source, recs, first)
	return nil
}

// searchEarlier is the position search of the own-error policies: when the first record
// over its floor may have started at an earlier position of its layer (earlierPossible),
// more gives the own errors of that layer at more positions (and the step's words); they
// are merged in causal order and the first over its floor is found again.
func (s *session) searchEarlier(r run, o *Origin, floors *ownerr.Floors, planned *engine.Selection, recs []ownerr.Record, first *ownerr.Record,
	more func(layer, last int) ([]ownerr.Record, string, error)) ([]ownerr.Record, *ownerr.Record, error) {
	if first == nil || !s.earlierPossible(first, planned, len(r.tokens)) {
		return recs, first, nil
	}
	extra, step, err := more(first.Layer, first.Pos)
	if err != nil {
		return nil, nil, err
	}
	recs = mergeOwn(recs, extra, golden.CausalOrder(decodeStartOf(len(r.tokens), r.plan.MaxNewTokens)), r.prompt.ID)
	first = floors.FirstOver(s.m.Config, recs, ownerr.Factor)
	o.PositionRuns++
	o.Steps = append(o.Steps, step+": "+ownFinding(first))
	return recs, first, nil
}

// settleOwn puts a prompt's own errors into its reports and, when first is over its floor,
// makes it the prompt's origin.
func (s *session) settleOwn(pr *PromptReport, o *Origin, method string, floors *ownerr.Floors, source string, recs []ownerr.Record, first *ownerr.Record) {
	res := &golden.OwnResult{Method: method, Floors: source}
	for i := range recs {
		res.Records = append(res.Records, ownRecord(pr.PromptID, s.m.Config, floors, &recs[i]))
	}
	if note := pr.Result.SetOwn(res); note != "" {
		pr.Notes = append(pr.Notes, note)
	}
	if first != nil {
		o.Stage, o.Layer, o.Pos, o.Category = first.Stage, first.Layer, first.Pos, first.Stage.Category()
		pr.Origin = o
	}
}

// earlierPossible reports whether the error of first may have entered at an earlier position
// of its layer (embed_out's row of each token included): an attention stage reads the keys
// and values of every earlier position, and an untraced position just before may hold the
// start of a run of divergent rows.
func (s *session) earlierPossible(first *ownerr.Record, planned *engine.Selection, nPrompt int) bool {
	if first.Pos == 0 || first.Stage == golden.Logits { // logits exist only at the rows a run asks for
		return false
	}
	return first.Stage >= golden.AttnCtx || !planned.Want(first.Stage, first.Layer, first.Pos-1)
}

// layerUpTo selects every stage of one layer at positions 0..last, of nPos positions.
func layerUpTo(c engine.Config, layer, last, nPos int) *engine.Selection {
	positions := make([]int, last+1)
	for i := range positions {
		positions[i] = i
	}
	stages := make([]golden.Stage, golden.NumStages)
	for i := range stages {
		stages[i] = golden.Stage(i)
	}
	return engine.NewSelection(stages, []int{layer}, c.NLayer, positions, nPos)
}

// decodeStartOf is the first generated position of a prompt of n tokens, or -1.
func decodeStartOf(n, maxNew int) int {
	if maxNew == 0 {
		return -1
	}
	return n
}

// mergeOwn adds the records of more whose keys recs lacks, in causal order.
func mergeOwn(recs, more []ownerr.Record, order func(a, b golden.Key) int, id string) []ownerr.Record {
	have := map[ownerr.Key]bool{}
	for _, r := range recs {
		have[r.Key] = true
	}
	for _, r := range more {
		if !have[r.Key] {
			recs = append(recs, r)
		}
	}
	slices.SortStableFunc(recs, func(a, b ownerr.Record) int { return order(a.GoldenKey(id), b.GoldenKey(id)) })
	return recs
}

func ownFinding(r *ownerr.Record) string {
	if r == nil {
		return "every own error within its floor"
	}
	return fmt.Sprintf("first own error over its floor at layer %d %s pos=%d (rel_l2 %.3g)", r.Layer, r.Stage, r.Pos, r.Own.RelL2)
}

// ownRecord converts an own-error record for the reports.
func ownRecord(id string, c engine.Config, f *ownerr.Floors, r *ownerr.Record) golden.OwnRecord {
	return golden.OwnRecord{
		Key:     r.GoldenKey(id),
		Missing: r.Missing,
		Own: golden.OwnError{RelL2: r.Own.RelL2, MAE: r.Own.MAE, Floor: f.Floor(c, r.Key), Factor: ownerr.Factor,
			Inherited: r.Inherited, Total: r.Total},
	}
}

// ownState is what a session keeps for the replay policy.
type ownState struct {
	ownOnce sync.Once
	ownRef  *engineTracer
	ownErr  error

	calibration [][]ownerr.Record // Calibrate: the own errors of each prompt
	calibrated  []string          // and the prompts

	tmpOnce sync.Once
	tmpRows string // an external engine's rows when no artifacts are written; removed by close
}

// Calibration is what Calibrate measured: the noise floors written, and the margins of the
// clean own errors against the default floors, per stage.
type Calibration struct {
	Path    string          // the noise.json written
	Floors  *ownerr.Floors  // what it holds
	Margins []ownerr.Margin // the worst clean own error of each stage against its default floor
	Table   string          // the margins as a Markdown table
}

// calibrate measures the own errors of a clean run of r: every layer replayed at the planned
// positions.
func (s *session) calibrate(pr *PromptReport, r run) error {
	if len(r.faults) > 0 {
		return fmt.Errorf("refusing to calibrate with faults injected (%s): floors come from a known-good build", engine.FormatFaults(r.faults))
	}
	if _, ok := s.replayer(); !ok {
		return fmt.Errorf("calibrate: backend %q cannot replay layers (engine.Replayer); an external engine is judged per operation, with the default floors", s.cfg.backend)
	}
	recs, err := s.ownRecords(r, s.everyLayer(r), nil)
	if err != nil {
		return err
	}
	s.calibration = append(s.calibration, recs)
	s.calibrated = append(s.calibrated, pr.PromptID)
	return nil
}

// writeFloors writes the floors of the prompts calibrate measured to the device's noise.json
// (one file for the model, over every prompt) and returns them with the margins.
func (s *session) writeFloors() (*Calibration, error) {
	if len(s.calibration) == 0 {
		return nil, nil
	}
	ref, err := s.ownReference()
	if err != nil {
		return nil, err
	}
	f := ownerr.Calibrate(ownerr.MethodReplay, s.calibration...)
	f.Device, f.Reference, f.Model, f.Prompts = s.cut.Device(), ref.Device(), s.modelName, s.calibrated
	path := ownerr.NoisePath(s.goldenRoot(), f.Device, f.Model)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	if err := f.WriteFile(path); err != nil {
		return nil, err
	}
	var all []ownerr.Record
	for _, recs := range s.calibration {
		all = append(all, recs...)
	}
	var defaults *ownerr.Floors // nil: the default formula
	ms := defaults.Margins(s.m.Config, all)
	return &Calibration{Path: path, Floors: f, Margins: ms, Table: ownerr.FormatMargins(ms)}, nil
}
