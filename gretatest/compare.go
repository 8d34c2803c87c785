package gretatest

import (
	"fmt"

	"github.com/gretabisect/gretabisect/golden"
)

// compareOne compares the records of one prompt under pol. Comparing nothing is an error
// (golden.Compare's rule): a test must never pass because it compared nothing.
func compareOne(cand, base []golden.Record, pol golden.Policy) (*golden.PromptResult, error) {
	rep, err := golden.CompareRecords(cand, base, pol)
	if err != nil {
		return nil, err
	}
	if len(rep.Prompts) != 1 {
		return nil, fmt.Errorf("records of %d prompts, want one", len(rep.Prompts))
	}
	return rep.Prompts[0], nil
}

// stageOf returns the stage of a failure (golden.NumStages for a name outside the table).
func stageOf(f *golden.Failure) golden.Stage {
	if st, ok := golden.StageByName(f.TensorName); ok {
		return st
	}
	return golden.NumStages
}
