// Package ownerr measures a backend's own error: what each layer, stage or operation gets
// wrong when it is given correct inputs, apart from the drift it inherited from the layers
// below. End to end, float32 noise grows through the layers, so a tolerance that never
// fires on a correct device (rel_l2 1e-3) misses a kernel that is wrong by 1e-4; the own
// error of a correct backend stays at rounding level (1e-7..1e-6 here), and a 1e-4 error
// stands out by two orders of magnitude.
//
// Two ways to measure it, one record type (Record: Own, and Total and Inherited where the
// candidate's own rows are known), records in causal order:
//
//   - Own and Replay, for a backend that can replay (engine.Replayer: the CPU engines, the
//     HIP backend): the candidate runs each layer from the reference's residual stream
//     entering it, and each row is compared with the reference's row of the same run.
//   - PerOp, for a backend that cannot but writes raw rows (an external engine's
//     raw_file): the reference recomputes each stage from the candidate's own input rows of
//     that stage (ref.Inputs lists them), and the candidate's row is compared with that.
//
// The reference's rows come from a live run of the CPU reference, since goldens hold hashes
// and sketches only: pass KeepForReplay (or KeepRows) as driver.Request.Keep. Measured with
// BenchmarkOwn for p6_len_32 (1658 positions, the default plan over every layer, on 2
// cores): on the tiny model the run keeps 24 MB and the replay of one layer costs a tenth
// of a forward pass; on a TinyLlama-sized F32 model the run takes 272 CPU-seconds and keeps
// 409 MB (the replay inputs, 22 x 1658 x 2048 float32 values, are 299 MB of it), and one
// replayed layer takes 12.5 CPU-seconds on the reference, 58 on cpu-f64acc: own errors of
// every layer cost one more forward pass of the candidate.
//
// A row is wrong when its own error is over Factor x its noise floor (Floors.Over,
// FirstOver). Floors are measured on a known-good build (Calibrate: the worst clean own
// error per (stage, layer) over the standard prompts) and kept in noise.json beside the
// device's goldens (Floors.Write, ReadFloorsFile); without a file, DefaultFloor derives a
// floor from float32 rounding and the stage's reduction length. Margins says how close a
// run's noise comes to its floors.
//
// Factor = 4: measured with the float64-accumulating CPU candidate (cpu-f64acc) on the tiny
// model, floors calibrated on two standard prompts hold the third within 1.66x, and
// floors calibrated on the default plan's positions hold every position of p6_len_16
// (23,296 rows) within 1.35x; 4 leaves more than twice that. A fault of relative size
// 1e-4 then stands 90x (attn_ctx) to 1700x (a residual add) above its floor on the tiny
// model. On a GPU, whose float32 sums run in other orders than the reference's, the
// floors are expected 2-4x higher than the candidate's and the same factor to hold: a
// calibration there is what tells.
//
// How the replay policy is expected to call it (per prompt):
//
//	sel := plan.Resolve(nLayer, len(tokens))                      // the rows compared
//	rows := ownerr.NewRows()                                      // the reference's live run
//	driver.Run(cpu, m, driver.Request{..., Keep: ownerr.KeepForReplay(rows, sel, nLayer)})
//	ref := ownerr.Run{Config: m.Config, Rows: rows, Prompt: len(tokens)}
//	candRows := ownerr.NewRows()                                  // the candidate's normal run
//	driver.Run(cand, m, driver.Request{..., Keep: ownerr.KeepRows(candRows, sel, nLayer)})
//	recs, err := ownerr.Own(cand.(engine.Replayer), ref, sel, ownerr.Options{Candidate: candRows})
//	floors, _ := ownerr.ReadFloorsFile(ownerr.NoisePath(goldenDir, cand.Device(), model)) // nil: defaults
//	first := floors.FirstOver(m.Config, recs, ownerr.Factor)      // FIRST_FAIL, or nil
//
// Layer bisection replays ranges (Replay(lo, hi)) or single layers (Own with a selection of
// those layers): the reference's run must then keep every layer the search may replay
// (KeepForReplay with a selection of every layer: n_layer x positions x dim values of
// input); calibration is Calibrate over the Own records of every layer of the
// standard prompts, written with Floors.WriteFile; an exec engine's rows come from
// RowsFromTrace, its plan from KeepForOps's selection, and its records from PerOp.
package ownerr
