// Command fakeengine is a stand-in for an external inference engine, for testing the exec
// backend: it behaves like the seed's binary (reads a prompt file, traces the stages the
// seed's GRETA_* variables ask for, writes <prompt_id>_trace.jsonl) and computes with the CPU
// reference, with a bug planted on request, and it fails the ways real engines fail.
//
//	fakeengine --model SPEC|PATH --prompt-file FILE [--plant SPEC] [--prompt-id ID] [modes]
//
// The prompt file holds comma-separated token ids (BOS included) or text. --plant takes
// GRETA_INJECT's syntax and perturbs the forward pass like a real bug would; GRETA_INJECT
// adds faults on top. Tracing is on when GRETA_B3_61=1: GRETA_TRACE_STAGE_LAYERS,
// GRETA_TRACE_B3_61_<STAGE> and GRETA_TRACE_B3_61_POS_<N> select the rows (every generated
// position is traced), GRETA_MAX_NEW_TOKENS the tokens generated (default 5),
// GRETA_TRACE_ROUTE the route (prefill, or decode: a token at a time), GRETA_TRACE_OUT_DIR
// the output folder (default "."), GRETA_PROMPT_ID the prompt id (default the --prompt-id
// flag, else "prompt").
//
// Modes:
//
//	--crash-after N           write the first N records, then die like a kernel fault (exit 1)
//	--crash-at STAGE,LAYER[,POS]  die so when the run reaches that row (POS: the first position)
//	--hang                    hang instead of dying, with a child process, until killed
//	--pid-file PATH           with --hang, write the engine's and its child's pids there
//	--partial-line            when dying or hanging, leave half of the next record's line
//	--raw-only                write the seed's fields and raw_file rows (.npy files beside
//	                          the trace): no sketch, shape or dtype
//	--seed-only               write the seed's fields only: no sketch and no rows
//	--prefill-only            generate nothing, whatever GRETA_MAX_NEW_TOKENS says
//	--plan-file               read the plan from the file GRETA_TRACE_PLAN names, ignoring
//	                          the seed's variables
//	--ignore-route            compute the prompt in one batched pass whatever
//	                          GRETA_TRACE_ROUTE asks
//	--assume-layers N         the seed's bug: an engine built for N layers that, on a model
//	                          with another count, dies at its first attention RMSNorm
//
// Records are written in the order an engine computes them: the prompt's batched pass
// (stage by stage, positions ascending), then each generated token's step.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/driver"
	"github.com/gretabisect/gretabisect/internal/execengine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
	_ "github.com/gretabisect/gretabisect/internal/ref"
	"github.com/gretabisect/gretabisect/internal/trace"
)

func main() {
	if len(os.Args) == 2 && os.Args[1] == "--hang-child" {
		sleepForever() // the child of --hang: it dies only with its process group
	}
	if err := run(os.Args[1:]); err != nil {
		var f *fault
		if errors.As(err, &f) {
			fmt.Fprintln(os.Stderr, f.msg) // a kernel's own words, as the seed's engine printed them
			os.Exit(1)
		}
		fmt.Fprintln(os.Stderr, "fakeengine:", err)
		os.Exit(2)
	}
}

// fault is the engine dying mid-run, as a GPU kernel fault ends a real engine.
type fault struct{ msg string }

func (f *fault) Error() string { return f.msg }

type modes struct {
	crashAfter   int
	crashAt      string
	hang         bool
	pidFile      string
	partialLine  bool
	rawOnly      bool
	seedOnly     bool
	prefillOnly  bool
	planFile     bool
	ignoreRoute  bool
	assumeLayers int
}

func run(args []string) error {
	fs := flag.NewFlagSet("fakeengine", flag.ContinueOnError)
	modelSpec := fs.String("model", model.TinySpec, "model: an embedded spec (tiny, tiny-llama3, tiny-qwen2) or a GGUF path")
	promptFile := fs.String("prompt-file", "", "file of comma-separated token ids or text")
	plant := fs.String("plant", "", "a bug to plant, in GRETA_INJECT syntax")
	promptID := fs.String("prompt-id", "prompt", "prompt id when GRETA_PROMPT_ID is not set")
	var md modes
	fs.IntVar(&md.crashAfter, "crash-after", -1, "die after writing this many records")
	fs.StringVar(&md.crashAt, "crash-at", "", "die on reaching STAGE,LAYER[,POS]")
	fs.BoolVar(&md.hang, "hang", false, "hang instead of dying")
	fs.StringVar(&md.pidFile, "pid-file", "", "with --hang: file receiving the pids left running")
	fs.BoolVar(&md.partialLine, "partial-line", false, "leave half a line when dying or hanging")
	fs.BoolVar(&md.rawOnly, "raw-only", false, "write raw_file rows instead of sketches")
	fs.BoolVar(&md.seedOnly, "seed-only", false, "write the seed's fields only: no sketch, no rows")
	fs.BoolVar(&md.prefillOnly, "prefill-only", false, "generate no token")
	fs.BoolVar(&md.planFile, "plan-file", false, "read the plan from GRETA_TRACE_PLAN only")
	fs.BoolVar(&md.ignoreRoute, "ignore-route", false, "compute the prompt in one batched pass whatever the route")
	fs.IntVar(&md.assumeLayers, "assume-layers", 0, "the layer count the engine was built for (0: the model's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *promptFile == "" {
		return fmt.Errorf("--prompt-file is required")
	}
	faults, err := engine.ParseFaults(*plant)
	if err != nil {
		return fmt.Errorf("--plant: %w", err)
	}
	injected, err := engine.ParseFaults(os.Getenv("GRETA_INJECT"))
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
	fmt.Printf("fakeengine: %s, %d layers; prompt %s of %d tokens\n", m.Name, m.Config.NLayer, id, len(p.Tokens))

	plan, route, err := readPlan(md)
	if err != nil {
		return err
	}
	if md.prefillOnly {
		plan.MaxNewTokens = 0
	}
	if md.ignoreRoute {
		route = golden.RoutePrefill
	}
	dir := os.Getenv("GRETA_TRACE_OUT_DIR")
	if dir == "" {
		dir = "."
	}
	req := driver.Request{PromptID: id, Tokens: p.Tokens, Plan: plan, Faults: faults, Route: route}
	if md.rawOnly {
		req.RawDir = dir
	}
	e, err := engine.Open("cpu", &m.Model)
	if err != nil {
		return err
	}
	defer e.Close()
	res, err := driver.Run(e, m, req)
	if err != nil {
		return err
	}
	recs := res.Records
	order := golden.RouteOrder(route, len(p.Tokens))
	slices.SortStableFunc(recs, func(a, b golden.Record) int { return order(golden.KeyOf(a), golden.KeyOf(b)) })
	if md.rawOnly || md.seedOnly {
		for i := range recs {
			recs[i].Sketch, recs[i].Shape, recs[i].DType = nil, nil, ""
		}
	}
	end, why, err := md.end(recs, m, order, len(p.Tokens))
	if err != nil {
		return err
	}
	if end == len(recs) {
		if len(recs) == 0 {
			return nil
		}
		return golden.WriteTrace(golden.TracePath(dir, id), recs)
	}
	if err := writeUntil(golden.TracePath(dir, id), recs, end, md.partialLine); err != nil {
		return err
	}
	if md.hang {
		return hang(md.pidFile)
	}
	return &fault{why}
}

// readPlan reads the plan and route from GRETA_TRACE_PLAN's file, or from the seed's
// variables and GRETA_TRACE_ROUTE.
func readPlan(md modes) (trace.Plan, string, error) {
	if md.planFile {
		pf, err := execengine.ReadPlanFile(os.Getenv("GRETA_TRACE_PLAN"))
		if err != nil {
			return trace.Plan{}, "", fmt.Errorf("GRETA_TRACE_PLAN: %w", err)
		}
		plan, err := pf.Plan()
		return plan, pf.Route, err
	}
	plan := trace.Plan{MaxNewTokens: trace.DefaultMaxNewTokens}
	if v := os.Getenv("GRETA_MAX_NEW_TOKENS"); v != "" {
		var err error
		if plan.MaxNewTokens, err = strconv.Atoi(v); err != nil {
			return plan, "", fmt.Errorf("GRETA_MAX_NEW_TOKENS=%q: not an integer", v)
		}
	}
	if os.Getenv("GRETA_B3_61") == "1" {
		plan.Prefill, plan.Decode = true, true
		plan.Layers = trace.DefaultLayers
		var err error
		if plan, err = trace.PlanFromEnv(plan, os.Environ()); err != nil {
			return plan, "", err
		}
	}
	return plan, os.Getenv("GRETA_TRACE_ROUTE"), nil
}

// end returns how many of recs (in computing order) are written before the run dies, and
// the engine's last words.
func (md modes) end(recs []golden.Record, m *model.Model, order func(a, b golden.Key) int, nPrompt int) (int, string, error) {
	const illegal = "launch failed: an illegal memory access was encountered"
	switch {
	case md.assumeLayers > 0 && md.assumeLayers != m.Config.NLayer:
		// The layer table is laid out for assumeLayers layers: the first weight read
		// through it, the attention norm of layer 0, is out of bounds.
		return before(recs, order, golden.Key{PosID: 0, Layer: 0, TensorName: golden.AttnIn.String()}), "RMSNorm (Attn) " + illegal, nil
	case md.crashAt != "":
		k, err := parseRow(md.crashAt)
		if err != nil {
			return 0, "", err
		}
		st, _ := golden.StageByName(k.TensorName)
		k.Layer = golden.LayerOf(st, k.Layer, m.Config.NLayer)
		return before(recs, order, k), fmt.Sprintf("%s (%s) layer %d pos %d: %s", st.Info().Role, st, k.Layer, k.PosID, illegal), nil
	case md.crashAfter >= 0:
		n := min(md.crashAfter, len(recs))
		return n, fmt.Sprintf("after %d records: %s", n, illegal), nil
	}
	return len(recs), "", nil
}

// before counts the records that come before k.
func before(recs []golden.Record, order func(a, b golden.Key) int, k golden.Key) int {
	n := 0
	for n < len(recs) && order(golden.KeyOf(recs[n]), golden.Key{PromptID: recs[n].PromptID, PosID: k.PosID, Layer: k.Layer, TensorName: k.TensorName}) < 0 {
		n++
	}
	return n
}

// parseRow parses STAGE,LAYER[,POS].
func parseRow(s string) (golden.Key, error) {
	f := strings.Split(s, ",")
	if len(f) < 2 || len(f) > 3 {
		return golden.Key{}, fmt.Errorf("--crash-at %q: want STAGE,LAYER[,POS]", s)
	}
	if _, ok := golden.StageByName(f[0]); !ok {
		return golden.Key{}, fmt.Errorf("--crash-at %q: unknown stage %q", s, f[0])
	}
	k := golden.Key{TensorName: f[0]}
	var err error
	if k.Layer, err = strconv.Atoi(f[1]); err != nil {
		return k, fmt.Errorf("--crash-at %q: layer %q is not an integer", s, f[1])
	}
	if len(f) == 3 {
		if k.PosID, err = strconv.Atoi(f[2]); err != nil {
			return k, fmt.Errorf("--crash-at %q: position %q is not an integer", s, f[2])
		}
	}
	return k, nil
}

// writeUntil writes the first n records to path as an engine does before it dies, each
// line as it is computed, and with partial half of the next line.
func writeUntil(path string, recs []golden.Record, n int, partial bool) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := golden.NewWriter(f)
	for _, r := range recs[:n] {
		if err := w.Write(r); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	if partial && n < len(recs) {
		line, err := recs[n].MarshalJSON()
		if err != nil {
			f.Close()
			return err
		}
		if _, err := f.Write(line[:len(line)/2]); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// hang starts a child that hangs too (in this process group) and never returns.
func hang(pidFile string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	child := exec.Command(self, "--hang-child")
	if err := child.Start(); err != nil {
		return err
	}
	if pidFile != "" {
		pids := fmt.Sprintf("%d %d\n", os.Getpid(), child.Process.Pid)
		if err := os.WriteFile(pidFile, []byte(pids), 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintln(os.Stderr, "fakeengine: waiting on a device queue that never drains")
	sleepForever()
	return nil
}

// sleepForever blocks without looking deadlocked to the runtime (an empty select with no
// other goroutine would end the process).
func sleepForever() {
	for {
		time.Sleep(time.Hour)
	}
}
