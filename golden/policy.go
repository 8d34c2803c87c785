package golden

import (
	"fmt"
	"strings"
)

// Threshold is the largest difference a tolerance policy accepts for one stage.
type Threshold struct {
	// RelL2 bounds ||x-y||/||y||. It is the primary test: it is scale-free, so one value
	// fits embeddings, residuals of magnitude 1-10 and logits of magnitude 10 alike.
	RelL2 float64
	// MAE bounds the mean absolute error. It catches what rel_l2 hides when a few large
	// outlier channels dominate ||y||: an error spread over every other channel. It is set
	// well above rel_l2 times the largest typical magnitude (10), so it does not fire on
	// rounding noise that rel_l2 accepts.
	MAE float64
}

// Policy decides whether a candidate record matches its baseline record.
type Policy struct {
	Name string // "exact", "tolerance" or "tolerance-f16"
	// Tolerance compares sizes (rel_l2, MAE) against Thresholds; otherwise the hash and
	// nz_count must be equal.
	Tolerance  bool
	Thresholds [NumStages]Threshold
	// Other applies to stage names outside the table.
	Other Threshold
	// Own makes own errors the verdict (the replay policy, PromptResult.SetOwn): a record
	// fails when its own error exceeds its noise floor by a factor. Thresholds then only
	// describe the end-to-end comparison that the reports show beside it.
	Own bool
}

// Default thresholds for the tolerance policies.
//
// Float32 engines differ from each other by summation order: about sqrt(n) * 6e-8 relative
// per dot product of length n (3e-6 for n = 2048), growing through the layers to 1e-5..1e-4
// at logits. 1e-3 leaves an order of magnitude of headroom and is still 100x below the
// seed's long-context collapse (rel_l2 0.3).
//
// Float16 engines round every stored activation to 11 significant bits (relative 5e-4) and
// accumulate such errors over the layers to about 1e-2; 5e-2 leaves headroom. Their MAE
// bound follows the same rule: rel_l2 bound times magnitude 10.
var (
	DefaultF32 = Threshold{RelL2: 1e-3, MAE: 5e-2}
	DefaultF16 = Threshold{RelL2: 5e-2, MAE: 5e-1}
)

// The three policies. Exact is for the same backend and device (the hashes of a
// deterministic engine must agree); Tolerance and ToleranceF16 are for cross-backend
// comparison of float32 and float16 engines.
var (
	Exact        = Policy{Name: "exact"}
	Tolerance    = tolerancePolicy("tolerance", DefaultF32)
	ToleranceF16 = tolerancePolicy("tolerance-f16", DefaultF16)
	// Replay is the policy for a backend that can replay layers (engine.Replayer) against a
	// baseline of another device: each record's own error, measured by running its layer
	// from the reference's inputs, against the noise floor of its (stage, layer) times a
	// factor (internal/ownerr). A comparison of files cannot replay: analyze does not
	// offer it.
	Replay = ownPolicy("replay")
	// PerOp is the replay policy's twin for an external engine that writes its raw rows but
	// cannot replay: each operation's own error recomputed by the reference from the engine's
	// own input rows.
	PerOp = ownPolicy("per-op")
)

func ownPolicy(name string) Policy {
	p := tolerancePolicy(name, DefaultF32)
	p.Own = true
	return p
}

func tolerancePolicy(name string, t Threshold) Policy {
	p := Policy{Name: name, Tolerance: true, Other: t}
	for i := range p.Thresholds {
		p.Thresholds[i] = t
	}
	return p
}

// WithThreshold returns a copy of p with stage st's threshold set to t.
func (p Policy) WithThreshold(st Stage, t Threshold) Policy {
	p.Thresholds[st] = t
	return p
}

// threshold returns the threshold for a tensor_name.
func (p Policy) threshold(tensorName string) Threshold {
	if st, ok := StageByName(tensorName); ok {
		return p.Thresholds[st]
	}
	return p.Other
}

// PolicyByName returns Exact, Tolerance or ToleranceF16 by name.
func PolicyByName(name string) (Policy, error) {
	for _, p := range []Policy{Exact, Tolerance, ToleranceF16} {
		if p.Name == name {
			return p, nil
		}
	}
	return Policy{}, fmt.Errorf("unknown policy %q (want %s)", name,
		strings.Join([]string{Exact.Name, Tolerance.Name, ToleranceF16.Name}, ", "))
}
