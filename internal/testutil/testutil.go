// Package testutil is linked by every test package of the module. Importing it registers
// goldie's -update flag, so `go test ./... -update` works from the root instead of failing
// with "flag provided but not defined: -update" in packages without golden files.
package testutil

import (
	"flag"

	_ "github.com/sebdah/goldie/v2" // registers -update, -clean
)

// Update reports whether the test binary runs with -update (or GOLDIE_UPDATE=1 is set).
func Update() bool {
	f := flag.Lookup("update")
	return f != nil && f.Value.String() == "true"
}
