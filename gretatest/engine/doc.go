// Package engine is the contract between gretatest and an inference engine: what an engine
// implements to be bisected, what it receives, and how it hands its rows over.
//
// An engine is a value of a type implementing Engine: Forward runs tokens through the model
// and calls the Tap once per stage of the stage table (golden.Stages) with the rows it just
// computed, in place, so that faults injected through the tap reach everything downstream;
// Reset empties its KV cache; Device names the hardware, which picks the golden files it is
// compared with exactly (<golden>/<device>/<model>/). A Factory builds one for a Model (its
// configuration and float32 weights, read-only). Engines of other modules plug in with
// gretatest.Engine, or with Register and then gretatest.Backend or GRETA_BACKEND by name.
//
// Optional interfaces add what an engine can do beyond that: Replayer (run layers from given
// residual rows: layer replay, which separates a layer's own error from what it inherited),
// Varianter (a kernel variant recorded in golden manifests), Progressor (progress within a
// long Forward).
//
// The CPU reference ("cpu") and the HIP backend ("hip", build tag rocm) are engines of this
// package like any other; gretatest registers the CPU reference.
//
// A minimal engine:
//
//	type myEngine struct{ m *engine.Model /* buffers, KV cache */ }
//
//	func (e *myEngine) Forward(tokens []int32, pos0 int, tap *engine.Tap) ([]float32, error) {
//		x := e.embed(tokens)
//		tap.Rows(golden.EmbedOut, -1, pos0, e.m.Config.Dim, x)
//		for l := range e.m.Config.NLayer {
//			tap.Rows(golden.ResidualPreAttn, l, pos0, e.m.Config.Dim, x)
//			// ... one tap.Rows per stage, in the table's order
//		}
//		// ... the logits of the rows tap.Want(golden.Logits, NLayer, pos) asks for, and the last
//	}
package engine
