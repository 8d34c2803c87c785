package gretatest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/sebdah/goldie/v2"

	"github.com/gretabisect/gretabisect/golden"
)

// modelName names a model in golden paths: an embedded spec ("tiny", "tiny-qwen2"), or a
// GGUF file's base name without ".gguf".
func modelName(spec string) string {
	return strings.TrimSuffix(filepath.Base(spec), ".gguf")
}

// goldenRoot is the folder holding <device>/<model>/ golden files.
func (s *session) goldenRoot() string {
	if s.cfg.goldenDir != "" {
		return s.cfg.goldenDir
	}
	wd, err := os.Getwd()
	if err != nil {
		return filepath.Join("golden", "testdata")
	}
	root, err := moduleRoot(wd)
	if err != nil {
		return filepath.Join("golden", "testdata")
	}
	return filepath.Join(root, "golden", "testdata")
}

// goldenPath is the golden file of a prompt on a device. goldie names it, so that -update,
// GOLDIE_UPDATE and goldie's fixture layout mean the same here as in any goldie test.
func (s *session) goldenPath(device, promptID string) string {
	dir := filepath.Join(s.goldenRoot(), device, s.modelName)
	// goldie.New only uses its testing.TB to report a bad option; these options are valid.
	g := goldie.New(nil, goldie.WithFixtureDir(dir), goldie.WithNameSuffix(golden.TraceSuffix))
	return g.GoldenFileName(nil, promptID)
}

// readGolden reads the golden trace of a prompt: the device's own, else the reference
// backend's (a cross-device comparison). The error wraps fs.ErrNotExist, with the device's
// own path, when neither exists.
func (s *session) readGolden(device, promptID string) (recs []golden.Record, baseDevice, path string, err error) {
	path = s.goldenPath(device, promptID)
	t, err := golden.ReadTrace(path)
	if errors.Is(err, fs.ErrNotExist) {
		if ref, rerr := s.ownReference(); rerr == nil && ref.Device() != device {
			refPath := s.goldenPath(ref.Device(), promptID)
			if rt, rerr := golden.ReadTrace(refPath); rerr == nil {
				return rt.Records, ref.Device(), refPath, nil
			}
		}
	}
	if err != nil {
		return nil, "", path, err
	}
	return t.Records, device, path, nil
}

// writeGolden records a golden trace atomically, without its volatile fields, so two
// identical runs write identical files.
func writeGolden(path string, recs []golden.Record) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	out := make([]golden.Record, len(recs))
	for i, r := range recs {
		r.Timestamp, r.GitCommitHash = "", ""
		out[i] = r
	}
	return golden.WriteTrace(path, out)
}

// writeTrace writes a prompt's trace into dir.
func writeTrace(dir, promptID string, recs []golden.Record) error {
	if dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return golden.WriteTrace(golden.TracePath(dir, promptID), recs)
}

// extraDir holds the extra runs of self-bisection in the artifacts, in golden.WriteExtraRun's
// layout: extra/<prompt_id>/run<N>/{run.json,traces/,baseline/}.
const extraDir = "extra"

// makeArtifacts creates the artifacts folder, laid out like the seed's
// artifacts/<date>/b3_61/: traces/ (the backend under test), baseline/, extra/ (the runs of
// self-bisection), and the reports.
func (s *session) makeArtifacts(t TB) error {
	if s.cfg.noArtifacts {
		return nil
	}
	root := s.cfg.artifacts
	if root == "" {
		var err error
		if root, err = os.MkdirTemp("", "gretabisect-"); err != nil {
			return fmt.Errorf("artifacts: %w", err)
		}
		// Kept when the test fails (its path is in the failure message), removed otherwise.
		if !cleanup(t, func() {
			if !failed(t) {
				os.RemoveAll(root)
			}
		}) {
			t.Logf("gretatest: artifacts in %s", root)
		}
	}
	s.artDir = filepath.Join(root, time.Now().UTC().Format("2006-01-02"), s.cfg.suite)
	if err := os.MkdirAll(s.artDir, 0o755); err != nil {
		return fmt.Errorf("artifacts: %w", err)
	}
	return nil
}

// Report formats written to the artifacts folder.
var reportFormats = []string{golden.FormatMarkdown, golden.FormatJSON, golden.FormatHTML}

// reportPath is the report of one prompt in a format.
func (s *session) reportPath(promptID, format string) string {
	return filepath.Join(s.artDir, promptID+"_report."+format)
}

// writeTraces writes the traces of both sides of one prompt.
func (s *session) writeTraces(pr *PromptReport, cand, base []golden.Record) error {
	if err := writeTrace(s.artSub("traces"), pr.PromptID, cand); err != nil {
		return err
	}
	return writeTrace(s.artSub("baseline"), pr.PromptID, base)
}

// writeReports writes the reports of one prompt.
func (s *session) writeReports(pr *PromptReport) error {
	return s.writeReportFiles(pr.PromptID+"_report", []*PromptReport{pr})
}

// writeSummaryReports writes the reports of every prompt compared: report.md, .json, .html.
func (s *session) writeSummaryReports(rep *Report) error {
	var prs []*PromptReport
	for _, pr := range rep.Prompts {
		if pr.Result != nil {
			prs = append(prs, pr)
		}
	}
	return s.writeReportFiles("report", prs)
}

func (s *session) writeReportFiles(name string, prs []*PromptReport) error {
	if len(prs) == 0 || s.artDir == "" {
		return nil
	}
	rep := &golden.Report{Policy: prs[0].policy}
	for _, pr := range prs {
		rep.Prompts = append(rep.Prompts, pr.Result)
		rep.Notes = append(rep.Notes, pr.Notes...)
	}
	for _, f := range reportFormats {
		var b bytes.Buffer
		if err := rep.Write(&b, f); err != nil {
			return fmt.Errorf("report: %w", err)
		}
		path := filepath.Join(s.artDir, name+"."+f)
		if err := golden.WriteFileAtomic(path, func(w io.Writer) error {
			_, err := w.Write(b.Bytes())
			return err
		}); err != nil {
			return fmt.Errorf("report: %w", err)
		}
	}
	return nil
}

// paths lists the reports and traces of a prompt, one per line.
func (s *session) paths(promptID string) string {
	if s.artDir == "" {
		return "reports: not written (NoArtifacts)"
	}
	var b strings.Builder
	b.WriteString("reports:")
	for _, f := range reportFormats {
		b.WriteString("\n  " + s.reportPath(promptID, f))
	}
	fmt.Fprintf(&b, "\ntraces:\n  %s\n  %s", golden.TracePath(filepath.Join(s.artDir, "traces"), promptID),
		golden.TracePath(filepath.Join(s.artDir, "baseline"), promptID))
	if extra := filepath.Join(s.artDir, extraDir, promptID); golden.HasExtraRuns(extra) {
		fmt.Fprintf(&b, "\n  %s (self-bisection's runs)", extra)
	}
	if log := s.logPath(promptID); log != "" && strings.HasPrefix(s.cfg.backend, execPrefix) {
		fmt.Fprintf(&b, "\nengine log:\n  %s", log)
	}
	return b.String()
}

// failureMessage is the whole failure of a prompt: the FIRST_FAIL line of the origin, the
// first traced failure and how it was isolated, a diff of the two records, the paths.
func (s *session) failureMessage(pr *PromptReport, origin *golden.Failure, cand, base []golden.Record) string {
	var b strings.Builder
	b.WriteString(pr.Line)
	b.WriteString("\n")
	b.WriteString(pr.shapeLine())
	first := pr.FirstTraced
	b.WriteString("  | Prompt | Position | Layer | Tensor | Hash Match | MAE | rel_l2 | FIRST_FAIL |\n")
	row := func(f *golden.Failure, mark string) {
		mae, rel := "n/a", "n/a"
		if f.Diff != nil {
			mae, rel = fmt.Sprintf("%.3g", f.Diff.MAE), fmt.Sprintf("%.3g", f.Diff.RelL2)
		}
		fmt.Fprintf(&b, "  | %s | %d | %d | %s | %s | %s | %s | %s |\n",
			f.PromptID, f.PosID, f.Layer, f.TensorName, yesNo(f.HashMatch), mae, rel, mark)
	}
	switch {
	case first == nil: // the replay policy: no end-to-end failure, an own error over its floor
		row(origin, "Y (own error)")
		first = origin
	case pr.Origin != nil && origin.Key != first.Key:
		row(first, "N (first traced)")
		row(origin, "Y (isolated origin)")
	default:
		row(first, "Y")
	}
	b.WriteString(crashSection(pr))
	if o := pr.Origin; o != nil {
		what := "self-bisection"
		if pr.Result.Own != nil {
			what = "own errors"
		}
		fmt.Fprintf(&b, "%s: %s", what, o.RunsText())
		for _, st := range o.Steps {
			b.WriteString("\n  " + st)
		}
		b.WriteString("\n")
	}
	if c, ok := find(cand, first.Key); ok {
		if g, ok := find(base, first.Key); ok {
			fmt.Fprintf(&b, "traced record (-want +got):\n%s", recordDiff(g, c))
		}
	}
	fmt.Fprintf(&b, "candidate %s vs baseline %s, policy %s, %d records compared, %d differ",
		pr.Device, pr.Baseline, pr.Policy, pr.Compared, pr.mismatched)
	if own := pr.Result.Own; own != nil {
		fmt.Fprintf(&b, " end to end; own errors of %d records by %s, %d over their floor (floors from %s)",
			len(own.Records), own.Method, pr.Result.Mismatched, own.Floors)
	}
	if extra := pr.Result.Compared - pr.Compared; extra > 0 && pr.Result.Own == nil {
		fmt.Fprintf(&b, "; the extra runs compared %d more, %d differ", extra, pr.Result.Mismatched-pr.mismatched)
	}
	b.WriteString("\n")
	b.WriteString(s.paths(pr.PromptID))
	return b.String()
}

// recordDiff shows how two records differ, volatile fields and sketches left out (a sketch
// is noise to a reader; its estimate is in the table).
func recordDiff(base, cand golden.Record) string {
	return cmp.Diff(base, cand, cmpopts.IgnoreFields(golden.Record{}, "Timestamp", "GitCommitHash", "Sketch", "Extra"))
}

// find returns the record of recs with key k.
func find(recs []golden.Record, k golden.Key) (golden.Record, bool) {
	for _, r := range recs {
		if golden.KeyOf(r) == k {
			return r, true
		}
	}
	return golden.Record{}, false
}

func yesNo(b bool) string {
	if b {
		return "YES"
	}
	return "NO"
}
