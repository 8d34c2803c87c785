// Package gretatest runs the B3.61 bisect of an LLM inference engine as go test cases:
//
//	func TestB361(t *testing.T) {
//		gretatest.Bisect(t, gretatest.StandardPrompts(),
//			gretatest.Layers(0, 1, 2, 4, 8), gretatest.Critical(826, 1652))
//	}
//
// Bisect traces each prompt through the backend under test (a subtest per prompt, so
// `go test -run TestB361/p6_len_16` runs one), compares the trace with a golden trace, and on
// a divergence fails with one line naming the first divergent tensor and its root-cause
// category, followed by a short first-failure table and the paths of the full reports.
//
// The backend under test is a registered engine (Backend, GRETA_BACKEND: "cpu", "hip" under
// the rocm tag, or any name given to engine.Register), an engine passed by value (Engine),
// or an external program (exec:). Package gretatest/engine is the contract an engine of
// any module implements.
//
// # Golden traces
//
// One file per device, model and prompt: <GoldenDir>/<device>/<model>/<prompt_id>_trace.jsonl
// (device "cpu" for the CPU reference, "hip-gfx942" and so on for GPUs, "exec" for external
// engines; model an embedded model's spec, "tiny", "tiny-llama3" or "tiny-qwen2", or a GGUF
// file's base name). `go test ./... -update` (goldie's flag;
// GOLDIE_UPDATE=1 works too) re-records them through a temporary file and a rename, with
// timestamp and git_commit_hash blanked, so identical runs write identical files and a failed
// run leaves the old file. A missing golden fails with the command that records it. The
// comparison is exact when the golden comes from the same device, and golden.Tolerance when
// a device without goldens of its own (a GPU, an external engine) is compared with the
// reference backend's goldens; Policy overrides both.
//
// # Self-bisection
//
// The first traced divergence is rarely where the error started: only some layers and
// positions are traced. Bisect re-runs the backend with other plans until it has isolated
// the origin, the first divergent record of a full trace (see the Origin type): untraced
// layers before the first failing layer are traced by halves (at most ceil(log2(gap))+1
// runs), earlier positions of the isolated layer are traced when the failure came through
// attention or may have started at an untraced position, and every layer is traced at one
// position when the error entered the residual stream below. The baseline of these runs is
// the golden when it has their records and a live run of the reference backend otherwise.
// The failure's first line names the origin; the report says how many runs it took.
//
// # Shape
//
// Then the origin's stage runs once more on each side at every position, with raw rows,
// and the failure's second line says what the divergence looks like there: its positions,
// channels and kind, and the seed hypothesis it points to (golden.DiagnoseShape); it is on
// PromptReport.Shape and in every report. A clean run runs nothing more.
//
// # Fault injection
//
// Inject, InjectSpec or GRETA_INJECT ("stage=k_post_rope,layer=3,pos>=826,scale=1.001";
// syntax in engine.ParseFaults, several faults separated by ';') perturbs rows inside the
// backend's forward pass, before tracing, so everything downstream sees them: a rehearsal
// proving the harness finds what it should. Golden files are never recorded with faults.
//
// # Environment
//
//	GRETA_MODEL      model: a GGUF path, or "tiny" (default), "tiny-llama3" or "tiny-qwen2"
//	GRETA_BACKEND    backend under test: "cpu" (default), "hip" (default under -tags rocm),
//	                 or "exec:COMMAND" for an external engine (see below)
//	GRETA_INJECT     faults to inject
//	GRETA_ARTIFACTS  artifacts folder (default: a temporary folder kept only on failure)
//	GRETA_EXEC_TIMEOUT  how long one run of an external engine may take (default 30m)
//
// Options override the environment.
//
// # External engines
//
// GRETA_BACKEND="exec:./greta_infer --model {model} --prompt-file {prompt}" runs a command
// per traced run with the seed's environment for the plan: GRETA_B3_61=1,
// GRETA_TRACE_STAGE=1, GRETA_TRACE_STAGE_LAYERS, GRETA_TRACE_B3_61_<STAGE>=1 per stage,
// GRETA_TRACE_B3_61_POS_<N>=1 per position, GRETA_TRACE_OUT_DIR, GRETA_PROMPT_ID,
// GRETA_MAX_NEW_TOKENS, GRETA_TRACE_ROUTE, GRETA_TRACE_PLAN (the same plan as one JSON file)
// and, with faults, GRETA_INJECT; it reads the <prompt_id>_trace.jsonl the command writes
// there. Placeholders: {model}, {prompt} (a file with the prompt's text, or its token ids
// comma-separated), {tokens} (a file with the token ids), {prompt_id}, {out}. Raw rows the
// engine writes (raw_file) are sketched, so a tolerance policy can size differences, and
// kept with the artifacts' traces; the shape's run needs them.
//
// Each run's output goes to <artifacts>/<date>/<suite>/run/<prompt_id>.log. A run that
// exits non-zero or is killed is a CRASH, one that outlives ExecTimeout (its process group
// is killed) a HANG; the failure names the last planned record written and the first one
// missing, after comparing what was written (a divergence there comes first). In-process
// engines whose forward pass fails (a GPU kernel fault) get the same verdict.
//
// # Artifacts
//
// Reports and traces go to <artifacts>/<date>/<suite>/ (suite "b3_61"): <prompt>_report.md,
// .json and .html (the heatmap), traces/<prompt>_trace.jsonl (the backend under test) and
// baseline/<prompt>_trace.jsonl.
package gretatest
