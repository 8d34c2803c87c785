package golden

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sebdah/goldie/v2"

	"github.com/gretabisect/gretabisect/internal/testutil"
)

// assertGolden compares got with testdata/<name>.golden through goldie. A missing golden
// file fails with the command that records it, instead of goldie's generic hint.
func assertGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if _, err := os.Stat(path); os.IsNotExist(err) && !testutil.Update() {
		t.Fatalf("golden file %s does not exist; record it with: go test ./golden -run '^%s$' -update",
			path, strings.SplitN(t.Name(), "/", 2)[0])
	}
	goldie.New(t).Assert(t, name, got)
}

// TestReportGoldens renders the seed pairs and the demo comparison in every format and
// compares with the goldens.
func TestReportGoldens(t *testing.T) {
	dirs := func(dir string, p Policy) func(t *testing.T) *Report {
		return func(t *testing.T) *Report {
			return compareDirs(t, filepath.Join("testdata", dir, "candidate"), filepath.Join("testdata", dir, "baseline"), p)
		}
	}
	tests := []struct {
		name   string
		report func(t *testing.T) *Report
	}{
		{"seed_exact", dirs("seed", Exact)},
		{"seed_tolerance", dirs("seed", Tolerance)},
		{"seed_raw_exact", dirs("seed_raw", Exact)},
		{"demo_tolerance", demoReport},
	}
	for _, tc := range tests {
		rep := tc.report(t)
		for _, format := range []string{FormatMarkdown, FormatJSON, FormatHTML} {
			t.Run(tc.name+"."+format, func(t *testing.T) {
				var b bytes.Buffer
				if err := rep.Write(&b, format); err != nil {
					t.Fatal(err)
				}
				assertGolden(t, "report/"+tc.name+"."+format, b.Bytes())
			})
		}
	}
}
