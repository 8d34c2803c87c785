// Package testutil is linked by every test package of the module. Importing it registers
// goldie's -update flag, so `go test ./... -update` works from the root instead of failing
// with "flag provided but not defined: -update" in packages without golden files.
package testutil

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	_ "github.com/sebdah/goldie/v2" // registers -update, -clean
)

// Update reports whether the test binary runs with -update (or GOLDIE_UPDATE=1 is set).
func Update() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}

var fakeEngine struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// FakeEngine builds internal/fakeengine, a stand-in for an external engine, once per test
// binary, and returns the binary's path; the test binary's TestMain calls RemoveFakeEngine.
func FakeEngine(t testing.TB) string {
	t.Helper()
	fakeEngine.once.Do(func() {
		if fakeEngine.dir, fakeEngine.err = os.MkdirTemp("", "fakeengine-"); fakeEngine.err != nil {
			return
		}
		fakeEngine.bin = filepath.Join(fakeEngine.dir, "fakeengine")
		out, err := exec.Command("go", "build", "-o", fakeEngine.bin, "github.com/gretabisect/gretabisect/internal/fakeengine").CombinedOutput()
		if err != nil {
			fakeEngine.err = err
			fakeEngine.bin = string(out)
		}
	})
	if fakeEngine.err != nil {
		t.Fatalf("building the fake engine: %v\n%s", fakeEngine.err, fakeEngine.bin)
	}
	return fakeEngine.bin
}

// RemoveFakeEngine removes what FakeEngine built.
func RemoveFakeEngine() {
	if fakeEngine.dir != "" {
		os.RemoveAll(fakeEngine.dir)
	}
}
