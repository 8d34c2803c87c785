// Package longtest is the sensitivity matrix's cases at positions 826 and 1652 of the
// standard prompts (policytest.LongCases), in a test binary of their own: each runs the
// candidate over a whole long prompt several times.
package longtest

import (
	"testing"
	"time"

	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/gretatest/policytest"
)

// TestReplaySensitivityLong: faults of relative size 1e-4 at the collapse positions, against
// the CPU reference's committed goldens, each named exactly by the replay policy.
func TestReplaySensitivityLong(t *testing.T) {
	if testing.Short() {
		t.Skip("each case runs the candidate over a long prompt several times")
	}
	start := time.Now()
	n := policytest.RunSensitivity(t, policytest.LongCases(), policytest.CrossDeviceRoot(t), gretatest.NewCache())
	t.Logf("%d cases on %s in %v, %d with a replay of every position", len(policytest.LongCases()), policytest.Candidate(),
		time.Since(start).Round(time.Millisecond), n)
}
