// Command gretabisect traces Llama-family models, compares traces and names the first
// divergent tensor.
//
// Exit status: 0 ran and nothing diverged, 1 a divergence was found, 2 bad input or usage
// (one line on stderr).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/gretabisect/gretabisect/internal/execengine"
	"github.com/gretabisect/gretabisect/internal/model"
)

// Exit codes shared by every subcommand.
const (
	exitOK       = 0
	exitDiverged = 1
	exitUsage    = 2
)

type command struct {
	name    string
	summary string
	run     func(args []string, stdout, stderr io.Writer) int
}

var commands = map[string]command{}

// register adds a subcommand; each subcommand's file calls it from init.
func register(name, summary string, run func(args []string, stdout, stderr io.Writer) int) {
	commands[name] = command{name, summary, run}
}

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "-help" || args[0] == "--help" || args[0] == "help" {
		usage(stderr)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "gretabisect: unknown command %q (run gretabisect help)\n", args[0])
		return exitUsage
	}
	return c.run(args[1:], stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: gretabisect <command> [flags]\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nexit status: 0 nothing diverged, 1 divergence found, 2 bad input or usage")
}

// newFlags returns a FlagSet for a subcommand that reports errors instead of exiting.
func newFlags(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("gretabisect "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	return fs
}

// parseFlags parses args; it returns exitOK and false for -h, exitUsage and false for bad
// flags (the flag package has already printed why), and true to go on.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return 0, true
}

// modelFlag defines --model, defaulting to $GRETA_MODEL and then the embedded tiny model.
func modelFlag(fs *flag.FlagSet) *string {
	return fs.String("model", envOr("GRETA_MODEL", model.TinySpec),
		"GGUF model `path`, or an embedded test model: "+strings.Join(model.EmbeddedSpecs(), ", ")+" ($GRETA_MODEL)")
}

// timeoutFlag defines --timeout, how long a run of an external engine may take,
// defaulting to $GRETA_EXEC_TIMEOUT and then execengine.DefaultTimeout.
func timeoutFlag(fs *flag.FlagSet, dst *string) {
	fs.StringVar(dst, "timeout", envOr(execengine.EnvTimeout, execengine.DefaultTimeout.String()),
		"how long a run of an exec: engine may take before it is killed as hung: a `duration` (90s, 30m) or seconds, 0 for no limit ($"+execengine.EnvTimeout+")")
}

// fail prints one line naming the problem and returns exitUsage.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "gretabisect %s: %v\n", cmd, err)
	return exitUsage
}
