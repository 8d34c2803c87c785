package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/ownerr"
)

func init() {
	register("calibrate", "measure a backend's noise floors against the CPU reference for the replay policy", runCalibrate)
}

const calibrateUsage = `usage: gretabisect calibrate --backend NAME [--model tiny|PATH] [--golden DIR] [--prompts IDS] [--quiet]

On a known-good build, replays every layer of the backend on the CPU reference's inputs at
the default plan's positions of the standard prompts, measures each record's own error
against the reference's row, and writes the worst of each (stage, layer) to
<golden>/<device>/<model>/noise.json: the noise floors the replay policy reads when this
device is compared with another device's goldens. Prints the margin of each stage (its
worst own error over the default floor, 2 x 2^-24 x sqrt(reduction length)). The backend
must replay layers (cpu-f64acc, hip); the file is deterministic for a deterministic
backend, so committing it and re-running calibrate leaves git status clean.

exit status: 0 written, 2 bad input or usage

flags:
`

func runCalibrate(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("calibrate", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, calibrateUsage); fs.PrintDefaults() }
	modelSpec := modelFlag(fs)
	backend := fs.String("backend", "", "the backend to calibrate, one that replays layers: cpu-f64acc, hip (required)")
	goldenDir := fs.String("golden", "", "golden traces `dir` (default golden/testdata of the enclosing module)")
	ids := fs.String("prompts", "all", "standard prompt `ids`, comma-separated, or all")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	switch {
	case fs.NArg() > 0:
		return fail(stderr, "calibrate", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	case *backend == "":
		return fail(stderr, "calibrate", errors.New("--backend is required (the reference itself has no noise to calibrate)"))
	}
	prompts, err := selectPrompts(*ids)
	if err != nil {
		return fail(stderr, "calibrate", err)
	}
	m, err := model.Open(*modelSpec)
	if err != nil {
		return fail(stderr, "calibrate", fmt.Errorf("--model: %w", err))
	}
	opts := []gretatest.Option{gretatest.LoadedModel(*modelSpec, m), gretatest.Backend(*backend), gretatest.Calibrate(),
		gretatest.NoArtifacts(), gretatest.Env(func(string) string { return "" })}
	if *goldenDir != "" {
		opts = append(opts, gretatest.GoldenDir(*goldenDir))
	}
	if !*quiet {
		opts = append(opts, gretatest.Progress(newRunProgress(stderr).report))
	}
	var setupErr string
	tb := &cliTB{name: "TestCalibrate", stdout: stdout, stderr: io.Discard, quiet: true, setupErr: &setupErr}
	rep := gretatest.Bisect(tb, prompts, opts...)
	if setupErr != "" {
		return fail(stderr, "calibrate", errors.New(strings.TrimPrefix(setupErr, "gretatest: ")))
	}
	for _, p := range rep.Prompts {
		if p.Err != nil {
			return fail(stderr, "calibrate", fmt.Errorf("%s: %s", p.PromptID, oneLineOf(p.Err.Error())))
		}
	}
	if rep.Calibration == nil {
		return fail(stderr, "calibrate", errors.New("nothing measured"))
	}
	fmt.Fprintf(stdout, "wrote %s (%d floors over %s)\n\nMargins of the clean own errors against the default floors (below %g passes the replay policy without a file):\n\n%s",
		rep.Calibration.Path, len(rep.Calibration.Floors.Floors), strings.Join(rep.Calibration.Floors.Prompts, ", "),
		float64(ownerr.Factor), rep.Calibration.Table)
	return exitOK
}
