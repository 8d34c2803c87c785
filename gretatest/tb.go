package gretatest

import "testing"

// TB is the part of testing.TB that Bisect uses. Bisect reports through Errorf only (never
// FailNow), so a fake TB can collect the messages (see TestTheTest). When t is a *testing.T,
// each prompt runs as a subtest; a TB with a method Run(name string, f func(TB)) bool gets
// subtests too; any other TB runs the prompts one after another (every message starts
// with the prompt id).
type TB interface {
	Helper()
	Name() string
	Errorf(format string, args ...any)
	Logf(format string, args ...any)
}

// subtester is a TB that runs subtests with the TB type (a fake's equivalent of t.Run).
type subtester interface {
	Run(name string, f func(TB)) bool
}

// runSub runs f for one prompt as a subtest of t when t supports subtests.
func runSub(t TB, name string, f func(TB)) {
	switch tt := t.(type) {
	case *testing.T:
		tt.Run(name, func(st *testing.T) { f(st) })
	case subtester:
		tt.Run(name, f)
	default:
		f(prefixed{t, name})
	}
}

// prefixed adds a subtest's name to a TB without subtests.
type prefixed struct {
	TB
	name string
}

func (p prefixed) Name() string { return p.TB.Name() + "/" + p.name }

// failed reports whether t has failed, when t can tell.
func failed(t TB) bool {
	if f, ok := t.(interface{ Failed() bool }); ok {
		return f.Failed()
	}
	return false
}

// cleanup registers f to run when t ends, when t supports it; it reports whether it did.
func cleanup(t TB, f func()) bool {
	if c, ok := t.(interface{ Cleanup(func()) }); ok {
		c.Cleanup(f)
		return true
	}
	return false
}

// skip skips t when it can (a GPU backend on a machine without a GPU), and says why either way.
func skip(t TB, why string) {
	t.Helper()
	if sk, ok := t.(interface{ Skip(args ...any) }); ok {
		sk.Skip(why)
		return
	}
	t.Logf("%s", why)
}
