package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/gretabisect/gretabisect/internal/synth"
)

func init() {
	register("synth", "generate a random model with a preset's dimensions (GGUF)", runSynth)
}

const synthUsage = `usage: gretabisect synth [--preset NAME] [--dtype f32|f16|q8_0|q4_k] [--seed N] --out PATH [--quiet]

Writes a GGUF model with random weights, the same bytes for the same preset, dtype and seed
on every machine, streamed to disk. tiny is the embedded default test model; tiny-llama3
and tiny-qwen2 are small models of the two families; tinyllama, llama3.2-1b and
qwen2.5-0.5b have the real models' dimensions (4.4, 4.9 and 2.0 GB in f32). Norm weights,
biases and RoPE factors stay f32; q4_k stores a matrix whose rows do not split into blocks
of 256 as q8_0. Progress goes to stderr unless --quiet.

presets:
`

func runSynth(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("synth", stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, synthUsage)
		tw := tabwriter.NewWriter(stderr, 0, 4, 2, ' ', 0)
		for _, p := range synth.Presets {
			fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Summary())
		}
		tw.Flush()
		fmt.Fprint(stderr, "\nflags:\n")
		fs.PrintDefaults()
	}
	presetName := fs.String("preset", synth.Tiny.Name, "model `preset`: "+strings.Join(synth.PresetNames(), ", "))
	dtypeName := fs.String("dtype", string(synth.F32), "matrix `type`: f32, f16, q8_0 or q4_k (norms stay f32)")
	seed := fs.Uint64("seed", 0, "random `seed`")
	out := fs.String("out", "", "output `path` (written atomically)")
	quiet := fs.Bool("quiet", false, "no progress on stderr")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		return fail(stderr, "synth", fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if *out == "" {
		return fail(stderr, "synth", errors.New("--out PATH is required"))
	}
	p, err := synth.PresetByName(*presetName)
	if err != nil {
		return fail(stderr, "synth", fmt.Errorf("--preset: %w", err))
	}
	dt, err := synth.ParseDType(*dtypeName)
	if err != nil {
		return fail(stderr, "synth", fmt.Errorf("--dtype: %w", err))
	}
	var report synth.Progress
	var pr *progressLine
	if !*quiet {
		pr = newProgressLine(stderr, fmt.Sprintf("%s %s", p.Name, dt))
		report = pr.update
	}
	start := time.Now()
	if err := synth.WriteFile(*out, p, dt, *seed, report); err != nil {
		pr.done()
		return fail(stderr, "synth", err)
	}
	pr.done()
	st, err := os.Stat(*out)
	if err != nil {
		return fail(stderr, "synth", err)
	}
	fmt.Fprintf(stdout, "wrote %s: %s %s seed %d, %d bytes in %.1fs\n", *out, p.Name, dt, *seed, st.Size(), time.Since(start).Seconds())
	return exitOK
}

// progressLine reports a long write on stderr. A terminal gets one line redrawn with \r at
// most every redrawEvery; anything else (a log, a pipe) gets a plain line every tenth of
// the way, so redirected output holds no redraw noise.
type progressLine struct {
	w        io.Writer
	what     string
	tty      bool
	start    time.Time
	last     time.Time
	lastTick uint64 // tenths reported so far (plain mode)
	drawn    bool
}

const redrawEvery = 200 * time.Millisecond

func newProgressLine(w io.Writer, what string) *progressLine {
	tty := false
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil {
			tty = st.Mode()&os.ModeCharDevice != 0
		}
	}
	return &progressLine{w: w, what: what, tty: tty, start: time.Now()}
}

func (p *progressLine) update(done, total uint64) {
	if total == 0 {
		return
	}
	now := time.Now()
	if p.tty {
		if now.Sub(p.last) < redrawEvery && done < total {
			return
		}
		p.last, p.drawn = now, true
		fmt.Fprintf(p.w, "\r%s", p.text(done, total, now))
		return
	}
	if tick := done * 10 / total; tick > p.lastTick {
		p.lastTick = tick
		fmt.Fprintln(p.w, p.text(done, total, now))
	}
}

func (p *progressLine) text(done, total uint64, now time.Time) string {
	secs := now.Sub(p.start).Seconds()
	rate := float64(done) / max(secs, 1e-9) / (1 << 20)
	return fmt.Sprintf("synth %s: %3d%% %d/%d MiB, %.0f MiB/s, %.0fs", p.what, done*100/total, done>>20, total>>20, rate, secs)
}

// done ends a redrawn line, so that what follows starts on a line of its own. It is a
// no-op on a nil progressLine (--quiet).
func (p *progressLine) done() {
	if p != nil && p.drawn {
		fmt.Fprintln(p.w)
	}
}
