// Package bisecttest holds what the test binaries that drive gretatest.Bisect from outside
// the package share (policytest and its subpackages, shapetest): a TB that records, and the
// planted-fault tests' prompts and positions.
package bisecttest

import (
	"fmt"
	"testing"

	"github.com/gretabisect/gretabisect/gretatest"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/prompts"
)

// Recorder is a gretatest.TB that keeps what Bisect reports, so a test can assert on an
// expected failure.
type Recorder struct {
	name         string
	Errors, Logs []string
}

// NewRecorder returns a Recorder for the test named name.
func NewRecorder(name string) *Recorder { return &Recorder{name: name} }

func (r *Recorder) Helper()      {}
func (r *Recorder) Name() string { return r.name }
func (r *Recorder) Errorf(format string, args ...any) {
	r.Errors = append(r.Errors, fmt.Sprintf(format, args...))
}
func (r *Recorder) Logf(format string, args ...any) {
	r.Logs = append(r.Logs, fmt.Sprintf(format, args...))
}

// Positions of the 50-token prompt (the first 50 tokens of p6_len_16) under the default plan:
// windows 0..15, 17..32 and 34..49 are traced, 16 and 33 are not; 50..52 are generated.
// 826 and 1652 are the last positions of p6_len_16 and p6_len_32.
const (
	M50Len      = 50
	M50Early    = 2
	M50Untraced = 16
	M50Decode   = 51
	P6Len16Crit = 826
	P6Len32Crit = 1652
)

// ModelPrompts opens the embedded model spec and names the prompts the planted-fault tests
// use: m50 and the standard prompts.
func ModelPrompts(t testing.TB, spec string) (*model.Model, map[string]gretatest.Prompt) {
	t.Helper()
	m, err := model.Open(spec)
	if err != nil {
		t.Fatal(err)
	}
	p16, err := prompts.Standard(prompts.P6Len16, m.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]gretatest.Prompt{"m50": gretatest.TokenPrompt("m50", p16.Tokens[:M50Len]...)}
	for _, p := range gretatest.StandardPrompts() {
		byID[p.ID] = p
	}
	return m, byID
}
