package engine

import (
	"fmt"
	"sort"
	"strings"
	"sync"
)

var (
	regMu     sync.Mutex
	factories = map[string]Factory{}
)

// Register makes a backend available to Open under name. Backends register from init: the
// CPU reference as "cpu" (internal/ref), the HIP backend as "hip" (internal/hip, tag rocm).
// Registering a name twice panics: it is a programming error found at start-up.
func Register(name string, f Factory) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := factories[name]; dup {
		panic(fmt.Sprintf("engine: backend %q registered twice", name))
	}
	factories[name] = f
}

// Names lists the registered backends in order.
func Names() []string {
	regMu.Lock()
	defer regMu.Unlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Open starts backend name on m.
func Open(name string, m *Model) (Engine, error) {
	regMu.Lock()
	f, ok := factories[name]
	regMu.Unlock()
	if !ok {
		return nil, fmt.Errorf("engine: unknown backend %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	e, err := f(m)
	if err != nil {
		return nil, fmt.Errorf("engine: backend %q: %w", name, err)
	}
	return e, nil
}
