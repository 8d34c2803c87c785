// Command fakeengine is a stand-in for an external inference engine, for testing the exec
// backend of gretatest: it behaves like the seed's binary (reads a prompt file, traces the
// stages the seed's GRETA_* variables ask for, writes <prompt_id>_trace.jsonl) and computes
// with the CPU reference, with a bug planted on request.
//
//	fakeengine --model tiny|PATH --prompt-file FILE [--plant SPEC] [--prompt-id ID]
//
// The prompt file holds comma-separated token ids (BOS included) or text. --plant takes
// GRETA_INJECT's syntax and perturbs the forward pass like a real bug would; GRETA_INJECT
// adds faults on top. Tracing is on when GRETA_B3_61=1: GRETA_TRACE_STAGE_LAYERS,
// GRETA_TRACE_B3_61_<STAGE> and GRETA_TRACE_B3_61_POS_<N> select the rows (every generated
// position is traced), GRETA_MAX_NEW_TOKENS the tokens generated (default 5),
// GRETA_TRACE_OUT_DIR the output folder (default "."), GRETA_PROMPT_ID the prompt id
// (default the --prompt-id flag, else "prompt").
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/engine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	_ "github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/trace"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "fakeengine:", err)
		os.Exit(2)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("fakeengine", flag.ContinueOnError)
	modelSpec := fs.String("model", model.TinySpec, "model: tiny or a GGUF path")
	promptFile := fs.String("prompt-file", "", "file of comma-separated token ids or text")
	plant := fs.String("plant", "", "a bug to plant, in GRETA_INJECT syntax")
	promptID := fs.String("prompt-id", "prompt", "prompt id when GRETA_PROMPT_ID is not set")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *promptFile == "" {
		return fmt.Errorf("--prompt-file is required")
	}
	faults, err := trace.ParseFaults(*plant)
	if err != nil {
		return fmt.Errorf("--plant: %w", err)
	}
	injected, err := trace.ParseFaults(os.Getenv("GRETA_INJECT"))
	if err != nil {
		return fmt.Errorf("GRETA_INJECT: %w", err)
	}
	faults = append(faults, injected...)

	m, err := model.Open(*modelSpec)
	if err != nil {
		return err
	}
	id := *promptID
	if v := os.Getenv("GRETA_PROMPT_ID"); v != "" {
		id = v
	}
	text, err := os.ReadFile(*promptFile)
	if err != nil {
		return err
	}
	p, err := prompts.ParseTokens(id, strings.TrimSpace(string(text)))
	if err != nil {
		p, err = prompts.FromText(id, string(text), m.Tokenizer)
		if err != nil {
			return err
		}
	}

	plan := trace.Plan{MaxNewTokens: trace.DefaultMaxNewTokens}
	if v := os.Getenv("GRETA_MAX_NEW_TOKENS"); v != "" {
		if plan.MaxNewTokens, err = strconv.Atoi(v); err != nil {
			return fmt.Errorf("GRETA_MAX_NEW_TOKENS=%q: not an integer", v)
		}
	}
	if os.Getenv("GRETA_B3_61") == "1" {
		plan.Prefill, plan.Decode = true, true
		plan.Layers = trace.DefaultLayers
		if plan, err = trace.PlanFromEnv(plan, os.Environ()); err != nil {
			return err
		}
	}
	e, err := engine.Open("cpu", m)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := engine.Run(e, m, engine.Request{PromptID: id, Tokens: p.Tokens, Plan: plan, Faults: faults})
	if err != nil {
		return err
	}
	if len(res.Records) == 0 {
		return nil
	}
	dir := os.Getenv("GRETA_TRACE_OUT_DIR")
	if dir == "" {
		dir = "."
	}
	return golden.WriteTrace(golden.TracePath(dir, id), res.Records)
}
