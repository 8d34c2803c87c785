package gretatest

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Report is what Bisect found; it is safe to ignore (failures go through t).
type Report struct {
	Dir     string          // artifacts folder of this run: <root>/<date>/<suite>
	Prompts []*PromptReport // in the order of the prompts given
	// Calibration is what Calibrate measured and wrote; nil without the option.
	Calibration *Calibration
}

// PromptReport is the outcome for one prompt.
type PromptReport struct {
	PromptID string
	Device   string // device of the backend under test
	Baseline string // golden file compared against, or "live <backend> (<device>)"
	Policy   string // "exact", "tolerance", ...
	Compared int    // records compared
	Recorded bool   // -update wrote the golden file
	// Line is the one-line FIRST_FAIL message (of the isolated origin when self-bisection
	// ran); empty when nothing diverged.
	Line string
	// FirstTraced is the first divergent record of the planned trace, and Origin where
	// self-bisection isolated it; both nil when nothing diverged.
	FirstTraced *golden.Failure
	Origin      *Origin
	// Isolated is the failure of the origin's record (FirstTraced when no re-run moved it).
	Isolated *golden.Failure
	// Shape is what the divergence looks like at the origin (positions, channels, kind and
	// hypothesis), from one more run of the origin's stage at every position; ShapeErr says
	// why there is none where self-bisection ran. Both nil when nothing diverged.
	Shape    *golden.Shape
	ShapeErr error
	// Result is the comparison of the planned trace (golden's record-level outcome).
	Result *golden.PromptResult
	Err    error // why the prompt could not be compared
	// Crash is how the run of the planned trace ended early (a crash or a hang), located
	// in the plan; nil when it did not. Line is its verdict unless a record diverged first.
	Crash *golden.Crash
	// Notes are what the reader must know about the traces (records whose differences
	// cannot be sized, rows left out); they are logged and end the reports.
	Notes []string

	policy     golden.Policy
	mismatched int // failing records of the planned trace
}

// Bisect runs each prompt through the backend under test, compares its trace with the golden
// trace (or a live reference run) and, when they differ, re-runs to isolate where the
// divergence started. Each prompt is a subtest named after its id. A failure is one line
// first, `<prompt>: FIRST_FAIL pos=.. layer=.. tensor=.. category=.. (hash .. want .., MAE
// .., rel_l2 ..)`, naming the isolated origin, then the first traced failure, the steps of
// the self-bisection, a diff of the two records and the paths of the reports and traces.
//
// Golden files live at <GoldenDir>/<device>/<model>/<prompt_id>_trace.jsonl; -update (or
// GOLDIE_UPDATE=1) re-records them atomically, with the volatile fields (timestamp,
// git_commit_hash) blanked so identical runs write identical files. A backend whose device
// has no golden of its own is compared with the reference backend's goldens under the
// tolerance policy. See the Option functions for what can be changed and their defaults.
func Bisect(t TB, prompts []Prompt, opts ...Option) *Report {
	t.Helper()
	rep := &Report{}
	if len(prompts) == 0 {
		t.Errorf("gretatest: no prompts: a bisect must compare something")
		return rep
	}
	cfg, err := newConfig(opts)
	if err != nil {
		t.Errorf("gretatest: %v", err)
		return rep
	}
	s, err := newSession(t, cfg)
	if errors.Is(err, engine.ErrNoDevice) {
		skip(t, fmt.Sprintf("gretatest: %v", err))
		return rep
	}
	if err != nil {
		t.Errorf("gretatest: %v", err)
		return rep
	}
	defer s.close()
	rep.Dir = s.artDir
	for _, p := range prompts {
		pr := &PromptReport{PromptID: p.ID}
		rep.Prompts = append(rep.Prompts, pr)
		runSub(t, p.ID, func(t TB) {
			t.Helper()
			s.bisect(t, p, pr)
		})
	}
	if err := s.writeSummaryReports(rep); err != nil {
		t.Errorf("gretatest: %v", err)
	}
	if s.cfg.calibrate {
		cal, err := s.writeFloors()
		switch {
		case err != nil:
			t.Errorf("gretatest: calibrate: %v", err)
		case cal != nil:
			rep.Calibration = cal
			t.Logf("calibrated %s: margins of the clean own errors against the default floors:\n%s", cal.Path, cal.Table)
		}
	}
	return rep
}

// session holds what the prompts of one Bisect call share.
type session struct {
	cfg       *config
	m         *model.Model
	modelName string
	plan      trace.Plan
	cut       tracer // the backend under test
	artDir    string

	refOnce sync.Once
	ref     tracer
	refErr  error

	ownState // the replay policy's reference
}

func newSession(t TB, cfg *config) (*session, error) {
	var m *model.Model
	var err error
	if cfg.loaded != nil {
		m = cfg.loaded
	} else if m, err = cfg.cache.model(cfg.model, func() (*model.Model, error) { return model.Open(cfg.model) }); err != nil {
		return nil, fmt.Errorf("model %q: %w", cfg.model, err)
	}
	s := &session{cfg: cfg, m: m, modelName: modelName(cfg.model), plan: cfg.plan()}
	if s.cut, err = cfg.openTracer(cfg.backend, m); err != nil {
		if cfg.ownCache {
			cfg.cache.Close()
		}
		return nil, fmt.Errorf("backend %q: %w", cfg.backend, err)
	}
	if err := s.makeArtifacts(t); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *session) close() {
	s.cut.Close()
	if s.ref != nil {
		s.ref.Close()
	}
	if s.ownRef != nil {
		s.ownRef.Close()
	}
	if s.tmpRows != "" {
		os.RemoveAll(s.tmpRows)
	}
	if s.cfg.ownCache {
		s.cfg.cache.Close()
	}
}

// reference opens the reference backend on first use.
func (s *session) reference() (tracer, error) {
	s.refOnce.Do(func() {
		s.ref, s.refErr = s.cfg.openTracer(s.cfg.reference, s.m)
		if s.refErr != nil {
			s.refErr = fmt.Errorf("reference backend %q: %w", s.cfg.reference, s.refErr)
		}
	})
	return s.ref, s.refErr
}

// referenceRun returns the records of a fault-free run of r on the reference backend.
func (s *session) referenceRun(r run) ([]golden.Record, string, error) {
	ref, err := s.reference()
	if err != nil {
		return nil, "", err
	}
	r.faults, r.rows, r.note = nil, "", nil
	recs, err := s.cfg.cache.reference(s.cfg.reference, s.cfg.model, r, func() ([]golden.Record, error) {
		return ref.Trace(r, s.progress(r))
	})
	return recs, ref.Device(), err
}

// progress returns the progress callback of one run of a prompt of n tokens; it reports
// the start of the run (0 done) at once.
func (s *session) progress(r run) func(done, total int) {
	if s.cfg.progress == nil {
		return nil
	}
	s.cfg.progress(r.prompt.ID, 0, len(r.tokens)+r.plan.MaxNewTokens)
	return func(done, total int) { s.cfg.progress(r.prompt.ID, done, total) }
}

// plan is the trace plan the options describe.
func (c *config) plan() trace.Plan {
	p := trace.DefaultPlan()
	p.Layers = c.layers
	p.Positions = c.critical
	p.AllPositions = c.allPositions
	p.Stages = c.stages
	p.MaxNewTokens = c.maxNew
	return p
}

// bisect runs one prompt.
func (s *session) bisect(t TB, p Prompt, pr *PromptReport) {
	t.Helper()
	pr.Device = s.cut.Device()
	if err := s.bisectErr(t, p, pr); err != nil {
		pr.Err = err
		t.Errorf("%s: %v", p.ID, err)
	}
}

func (s *session) bisectErr(t TB, p Prompt, pr *PromptReport) error {
	t.Helper()
	tokens, err := p.Tokens(s.m)
	if err != nil {
		return err
	}
	r := run{prompt: p, tokens: tokens, plan: s.plan, faults: s.cfg.faults,
		log: s.logPath(p.ID), rows: s.rowsDir(), note: func(n string) { pr.Notes = append(pr.Notes, n) }}
	if s.cfg.calibrate {
		return s.calibrate(pr, r)
	}
	var candRows *ownerr.Rows // the backend's rows, for the replay policy
	if s.expectReplay(pr.Device, p.ID) {
		candRows = ownerr.NewRows()
		r.keep = ownerr.KeepRows(candRows, s.everyLayer(r), s.m.Config.NLayer)
	}
	cand, err := s.cut.Trace(r, s.progress(r))
	r.keep = nil
	crash, err := s.crashOf(r, cand, err)
	if err != nil {
		return err
	}
	pr.Crash = crash
	if n := unsizedNote(p.ID, pr.Device, cand); n != "" {
		pr.Notes = append(pr.Notes, n)
	}
	for _, n := range pr.Notes {
		t.Logf("note: %s", n)
	}

	// The baseline: the golden file, or the reference run live.
	var base []golden.Record
	var baseDevice string
	if s.cfg.live {
		if base, baseDevice, err = s.referenceRun(r); err != nil {
			return err
		}
		pr.Baseline = fmt.Sprintf("live %s (%s)", s.cfg.reference, baseDevice)
	} else {
		path := s.goldenPath(pr.Device, p.ID)
		if s.cfg.updating() {
			if len(s.cfg.faults) > 0 {
				return fmt.Errorf("refusing to record %s with faults injected (%s)", path, engine.FormatFaults(s.cfg.faults))
			}
			if crash != nil {
				return fmt.Errorf("refusing to record %s from a run that ended early: %s", path, strings.TrimPrefix(crash.Line(p.ID), p.ID+": "))
			}
			entry, err := s.manifestEntry(r)
			if err != nil {
				return err
			}
			if err := writeGolden(path, cand); err != nil {
				return fmt.Errorf("recording golden: %w", err)
			}
			if err := recordManifest(path, p.ID, entry); err != nil {
				return fmt.Errorf("recording golden: %w", err)
			}
			pr.Recorded, pr.Baseline = true, path
			t.Logf("%s: recorded %s (%d records)", p.ID, path, len(cand))
			return nil
		}
		if base, baseDevice, path, err = s.readGolden(pr.Device, p.ID); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("no golden trace %s; record it with: %s", path, s.recordCommand(t))
			}
			return err
		}
		pr.Baseline = path
		entry, err := s.manifestEntry(r)
		if err != nil {
			return err
		}
		notes, err := checkManifest(path, p.ID, entry, baseDevice == pr.Device)
		if err != nil {
			return fmt.Errorf("%s: %w; re-record it with: %s", path, err, s.recordCommand(t))
		}
		for _, n := range notes {
			t.Logf("%s: %s: %s", p.ID, path, n)
		}
	}

	pol := s.policy(pr.Device, baseDevice)
	perOp := crash == nil && s.perOpPossible(pol, cand)
	if perOp {
		pol = golden.PerOp
	}
	pr.Policy, pr.policy = pol.Name, pol
	res, err := compareRun(p.ID, cand, s.planned(r, base, crash), pol, crash)
	if err != nil {
		return fmt.Errorf("comparing with %s: %w", pr.Baseline, err)
	}
	pr.Compared, pr.mismatched = res.Compared, res.Mismatched
	pr.Result = res
	switch {
	case perOp:
		if err := s.judgePerOp(pr, r, cand); err != nil {
			return err
		}
	case pol.Own && crash == nil:
		if err := s.judgeOwn(pr, r, candRows); err != nil {
			return err
		}
	}
	// Artifacts are written when asked for, or when there is something to look at.
	if s.cfg.artifacts != "" || res.Status != golden.StatusMatch {
		if err := s.writeTraces(pr, cand, base); err != nil {
			return err
		}
	}
	switch res.Status {
	case golden.StatusMatch:
		t.Logf("%s: %d records match %s (%s)", p.ID, res.Compared, pr.Baseline, pol.Name)
		if s.cfg.artifacts != "" {
			return s.writeReports(pr)
		}
		return nil
	case golden.StatusMissing:
		line := res.Line() + missingHint(res, len(tokens), s.plan.MaxNewTokens)
		pr.Err = errors.New(line)
		t.Errorf("%s against %s\n%s", line, pr.Baseline, s.paths(p.ID))
		return s.writeReports(pr)
	case golden.StatusCrash, golden.StatusHang:
		pr.Line = crash.Line(p.ID)
		t.Errorf("%s", s.crashMessage(pr))
		return s.writeReports(pr)
	}
	pr.FirstTraced = res.FirstTraced
	if !s.cfg.noBisect && crash == nil && !pol.Own {
		pb := &promptProber{s: s, r: r, golden: base, goldenPol: pol}
		isolated, o, err := isolate(pb, s.plan, res.FirstFail, s.m.Config.NLayer, len(tokens))
		if err != nil {
			return fmt.Errorf("self-bisection after %s: %w", res.FirstFail.Line(), err)
		}
		if err := s.mergeRuns(pr, pb.runs); err != nil {
			return err
		}
		// Every report reads the merged result; it must name what the bisection isolated.
		if res.FirstFail.Key != isolated.Key {
			return fmt.Errorf("self-bisection isolated %s but its runs' first failure is %s", isolated.Line(), res.FirstFail.Line())
		}
		pr.Origin = o
	}
	if !s.cfg.noBisect && crash == nil {
		s.diagnoseShape(pr, r)
	}
	origin := res.FirstFail
	pr.Isolated = origin
	pr.Line = firstLine(origin)
	if err := s.writeReports(pr); err != nil {
		return err
	}
	t.Errorf("%s", s.failureMessage(pr, origin, cand, base))
	return nil
}

// firstLine is the FIRST_FAIL line of f, which may come from a self-bisection run where it
// was not the first failure of the planned trace.
func firstLine(f *golden.Failure) string {
	g := *f
	g.FirstFail = true
	return g.Line()
}

// policy is the comparison policy for a candidate of device cand against a baseline of
// device base: exact for the same device; across devices the replay policy when the
// backend can replay, else the tolerance policy.
func (s *session) policy(cand, base string) golden.Policy {
	switch {
	case s.cfg.policy != nil:
		return *s.cfg.policy
	case cand == base:
		return golden.Exact
	}
	if _, ok := s.replayer(); ok {
		return golden.Replay
	}
	return golden.Tolerance
}

// promptProber re-runs one prompt for self-bisection and keeps every run.
type promptProber struct {
	s         *session
	r         run
	golden    []golden.Record // the baseline of the planned run
	goldenPol golden.Policy
	runs      []probeRun
}

// probeRun is one extra run: what it was for and the records it compared on both sides.
type probeRun struct {
	run        *golden.ExtraRun
	cand, base []golden.Record
}

// mergeRuns folds the extra runs into the prompt's result, so that every report names the
// isolated origin, and writes them to the artifacts (extra/<prompt>/run<N>/) where
// `gretabisect analyze` finds them.
func (s *session) mergeRuns(pr *PromptReport, runs []probeRun) error {
	for i, x := range runs {
		id := pr.PromptID
		if err := pr.Result.Merge(*x.run, &golden.Trace{PromptID: id, Records: x.cand}, &golden.Trace{PromptID: id, Records: x.base}); err != nil {
			return fmt.Errorf("self-bisection: %w", err)
		}
		if dir := s.artSub(extraDir); dir != "" {
			if err := golden.WriteExtraRun(dir, i+1, *x.run, x.cand, x.base); err != nil {
				return fmt.Errorf("artifacts: %w", err)
			}
		}
	}
	return nil
}

func (pb *promptProber) probe(run *golden.ExtraRun, plan trace.Plan, keep func(golden.Record) bool) (*golden.Failure, error) {
	r := pb.r
	r.plan, r.rows, r.note = plan, "", nil // the planned run's rows and notes are the ones kept
	cand, err := pb.s.cut.Trace(r, pb.s.progress(r))
	if err != nil {
		return nil, err
	}
	cand = filter(cand, keep)
	// The golden file serves when it has every record; the reference runs live otherwise.
	base, pol := pb.golden, pb.goldenPol
	if !covers(base, cand) {
		var dev string
		if base, dev, err = pb.s.referenceRun(r); err != nil {
			return nil, err
		}
		pol = pb.s.policy(pb.s.cut.Device(), dev)
	}
	base = filter(base, keep)
	res, err := compareOne(cand, base, pol)
	if err != nil {
		return nil, err
	}
	run.Policy = pol
	pb.runs = append(pb.runs, probeRun{run: run, cand: cand, base: base})
	return res.FirstFail, nil
}

func filter(recs []golden.Record, keep func(golden.Record) bool) []golden.Record {
	var out []golden.Record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// covers reports whether base has a record for every key of cand.
func covers(base, cand []golden.Record) bool {
	have := make(map[golden.Key]bool, len(base))
	for _, r := range base {
		have[golden.KeyOf(r)] = true
	}
	for _, r := range cand {
		if !have[golden.KeyOf(r)] {
			return false
		}
	}
	return len(cand) > 0
}

// recordCommand is the command that records the golden of t's test: RecordWith's, or go test
// run from the module's root with the environment that chose the model and backend.
func (s *session) recordCommand(t TB) string {
	if s.cfg.recordCmd != "" {
		return s.cfg.recordCmd
	}
	pkg := "."
	if wd, err := os.Getwd(); err == nil {
		if root, err := moduleRoot(wd); err == nil {
			if rel, err := filepath.Rel(root, wd); err == nil && rel != "." {
				pkg = "./" + filepath.ToSlash(rel)
			}
		}
	}
	var prefix string
	for _, kv := range s.cfg.fromEnv {
		name, val, _ := strings.Cut(kv, "=")
		prefix += name + "=" + shellQuote(val) + " "
	}
	return fmt.Sprintf("%sgo test %s -run '%s' -update", prefix, pkg, regexpQuote(t.Name()))
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./:,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// regexpQuote quotes a test name for -run, which matches each '/'-separated level apart.
func regexpQuote(name string) string {
	levels := strings.Split(name, "/")
	for i, l := range levels {
		levels[i] = regexp.QuoteMeta(l)
	}
	return strings.Join(levels, "/")
}

// moduleRoot returns the nearest folder at or above dir holding a go.mod.
func moduleRoot(dir string) (string, error) {
	for d := dir; ; {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		parent := filepath.Dir(d)
		if parent == d {
			return "", fmt.Errorf("no go.mod at or above %s", dir)
		}
		d = parent
	}
}

// artSub is a folder of the artifacts, "" when none are written.
func (s *session) artSub(name string) string {
	if s.artDir == "" {
		return ""
	}
	return filepath.Join(s.artDir, name)
}
