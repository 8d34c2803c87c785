package main

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
)

func init() {
	register("analyze", "compare a candidate trace folder with a baseline and name the first divergent tensor", runAnalyze)
}

const analyzeUsage = `usage: gretabisect analyze --input_dir DIR --baseline_dir DIR --output FILE [--format md|json|html]
                          [--policy exact|tolerance|tolerance-f16] [--extra_dir DIR|none]

Reads every <prompt_id>_trace.jsonl in both folders, matches records on (prompt_id, pos_id,
layer, tensor_name), finds each prompt's FIRST_FAIL in causal order and writes the report
(Markdown, JSON, or an HTML page with one heatmap per prompt). Prints one line per prompt
that is not a match, then a summary.

The artifacts of a bisect hold, beside traces/ and baseline/, the extra runs of its
self-bisection (extra/<prompt_id>/run<N>/, each with its own policy). When --input_dir is
such a traces/ folder, they are merged in, so the report names the isolated origin as the
bisect did; --extra_dir names another folder, or none to leave them out.

exit status: 0 nothing diverged, 1 a divergence (or a missing record) was found, 2 bad input

flags:
`

func runAnalyze(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("analyze", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, analyzeUsage); fs.PrintDefaults() }
	inputDir := fs.String("input_dir", "", "candidate trace `folder`")
	baselineDir := fs.String("baseline_dir", "", "baseline (known-good) trace `folder`")
	output := fs.String("output", "", "report `file`")
	format := fs.String("format", "", "report format: md, json or html (default: from the output's extension, else md)")
	policyName := fs.String("policy", golden.Exact.Name, "comparison `policy`: exact (same backend and device), tolerance (float32 engines), tolerance-f16")
	extraDir := fs.String("extra_dir", "", "self-bisection's extra runs `dir` (default: extra/ beside --input_dir when it exists; none: leave them out)")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if err := analyze(*inputDir, *baselineDir, *output, *format, *policyName, *extraDir, fs.Args(), stdout); err != nil {
		if errors.Is(err, errDiverged) {
			return exitDiverged
		}
		return fail(stderr, "analyze", err)
	}
	return exitOK
}

func analyze(inputDir, baselineDir, output, format, policyName, extraDir string, rest []string, stdout io.Writer) error {
	switch {
	case len(rest) > 0:
		return fmt.Errorf("unexpected argument %q (folders are given with --input_dir and --baseline_dir)", rest[0])
	case inputDir == "":
		return errors.New("--input_dir is required")
	case baselineDir == "":
		return errors.New("--baseline_dir is required")
	case output == "":
		return errors.New("--output is required")
	}
	if format == "" {
		format = formatOf(output)
	}
	if format != golden.FormatMarkdown && format != golden.FormatJSON && format != golden.FormatHTML {
		return fmt.Errorf("--format %q: want md, json or html", format)
	}
	pol, err := golden.PolicyByName(policyName)
	if err != nil {
		return fmt.Errorf("--policy: %w", err)
	}
	cand, err := golden.ReadDir(inputDir)
	if err != nil {
		return fmt.Errorf("--input_dir: %w", err)
	}
	base, err := golden.ReadDir(baselineDir)
	if err != nil {
		return fmt.Errorf("--baseline_dir: %w", err)
	}
	rep, err := golden.Compare(cand, base, pol)
	if err != nil {
		return err
	}
	if in := filepath.Clean(inputDir); extraDir == "" && filepath.Base(in) == "traces" {
		if auto := filepath.Join(filepath.Dir(in), "extra"); golden.HasExtraRuns(auto) {
			extraDir = auto
		}
	}
	if extraDir != "" && extraDir != "none" {
		n, err := rep.MergeExtraRuns(extraDir)
		if err != nil {
			return fmt.Errorf("--extra_dir: %w", err)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d extra runs of self-bisection merged from %s: FIRST_FAIL is the isolated origin", n, extraDir))
	}
	if err := rep.WriteFile(output, format); err != nil {
		return fmt.Errorf("--output: %w", err)
	}
	return reportLines(rep, stdout)
}

// errDiverged reports a completed comparison that found a difference (exit 1).
var errDiverged = errors.New("diverged")

// reportLines prints a comparison's lines and returns errDiverged when it found a difference.
func reportLines(rep *golden.Report, stdout io.Writer) error {
	if err := rep.WriteLines(stdout); err != nil {
		return err
	}
	if !rep.OK() {
		return errDiverged
	}
	return nil
}

// formatOf picks the report format from the output file's extension.
func formatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".json":
		return golden.FormatJSON
	case ".html", ".htm":
		return golden.FormatHTML
	}
	return golden.FormatMarkdown
}
