package gretatest

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
	"github.com/gretabisect/gretabisect/internal/execengine"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/testutil"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Environment variables read for option defaults.
const (
	EnvModel     = "GRETA_MODEL"     // model: a GGUF path or an embedded spec ("tiny")
	EnvBackend   = "GRETA_BACKEND"   // backend: "cpu", "hip", or "exec:COMMAND"
	EnvInject    = "GRETA_INJECT"    // faults, in engine.ParseFaults syntax
	EnvArtifacts = "GRETA_ARTIFACTS" // artifacts folder, kept whatever the outcome
	// EnvExecTimeout bounds each run of an external engine: a Go duration ("90s", "30m")
	// or seconds; 0 waits forever.
	EnvExecTimeout = execengine.EnvTimeout
)

// Defaults of the options.
const (
	DefaultModel     = model.TinySpec // the embedded 10-layer test model
	DefaultReference = "cpu"          // the live reference backend
	DefaultSuite     = "b3_61"
	// DefaultExecTimeout is generous: a hang is told from a slow engine by waiting longer
	// than any run of the suite takes.
	DefaultExecTimeout = execengine.DefaultTimeout
)

// An Option changes one setting of Bisect. Each option's doc comment gives its default.
type Option func(*config) error

type config struct {
	layers       []int
	critical     []int
	allPositions bool
	stages       []golden.Stage
	maxNew       int

	model     string
	loaded    *model.Model
	backend   string
	engines   map[string]engine.Factory // engines given by value (Engine), by name
	reference string
	refSet    bool // Reference was given: injected faults do not change it
	live      bool // compare with a live reference run instead of the golden files
	faults    []engine.Fault
	faultsSet bool
	policy    *golden.Policy
	timeout   *time.Duration // of each exec run; nil: GRETA_EXEC_TIMEOUT, else the default

	goldenDir   string
	artifacts   string
	suite       string
	noBisect    bool
	calibrate   bool
	noArtifacts bool
	update      *bool // nil: the -update flag decides
	recordCmd   string
	cache       *Cache
	ownCache    bool // made for this call: closed with it
	progress    func(promptID string, done, total int)
	env         func(string) string
	fromEnv     []string // NAME=value of the GRETA_* variables that chose the model and backend
}

func newConfig(opts []Option) (*config, error) {
	c := &config{
		layers:    append([]int(nil), trace.DefaultLayers...),
		critical:  append([]int(nil), trace.DefaultPositions...),
		maxNew:    trace.DefaultMaxNewTokens,
		reference: DefaultReference,
		suite:     DefaultSuite,
		env:       os.Getenv,
	}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	// The environment fills what no option set.
	if c.model == "" {
		if c.model = c.env(EnvModel); c.model != "" {
			c.fromEnv = append(c.fromEnv, EnvModel+"="+c.model)
		}
		c.model = orDefault(c.model, DefaultModel)
	}
	if c.backend == "" {
		if c.backend = c.env(EnvBackend); c.backend != "" {
			c.fromEnv = append(c.fromEnv, EnvBackend+"="+c.backend)
		}
		c.backend = orDefault(c.backend, defaultBackend)
	}
	if !c.faultsSet {
		if spec := c.env(EnvInject); spec != "" {
			faults, err := engine.ParseFaults(spec)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", EnvInject, err)
			}
			c.faults = faults
		}
	}
	if len(c.faults) > 0 && !c.refSet {
		c.reference = c.backend
	}
	if c.timeout == nil {
		d := DefaultExecTimeout
		if v := c.env(EnvExecTimeout); v != "" {
			var err error
			if d, err = execengine.ParseTimeout(v); err != nil {
				return nil, fmt.Errorf("%s: %w", EnvExecTimeout, err)
			}
		}
		c.timeout = &d
	}
	if c.artifacts == "" {
		if dir := c.env(EnvArtifacts); dir != "" {
			c.artifacts = dir
		}
	}
	if c.cache == nil {
		c.cache, c.ownCache = NewCache(), true
	}
	return c, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// Env replaces os.Getenv for the GRETA_* defaults (tests of the framework use it so they
// neither read nor change the process environment). Default: os.Getenv.
func Env(lookup func(string) string) Option {
	return func(c *config) error { c.env = lookup; return nil }
}

// Layers sets the traced layers. Default: 0, 1, 2, 4, 8 (layers beyond the model are dropped).
func Layers(layers ...int) Option {
	return func(c *config) error {
		for _, l := range layers {
			if l < 0 {
				return fmt.Errorf("gretatest.Layers: layer %d is negative", l)
			}
		}
		c.layers = append([]int(nil), layers...)
		return nil
	}
}

// Critical sets the critical positions traced besides the last prompt position and the three
// windows of 16 positions. Default: 826, 1652 (positions beyond a prompt are dropped).
func Critical(positions ...int) Option {
	return func(c *config) error {
		for _, p := range positions {
			if p < 0 {
				return fmt.Errorf("gretatest.Critical: position %d is negative", p)
			}
		}
		c.critical = append([]int(nil), positions...)
		return nil
	}
}

// AllPositions traces every prompt position. Default: off (critical positions, the last one
// and the windows).
func AllPositions() Option {
	return func(c *config) error { c.allPositions = true; return nil }
}

// Stages sets the traced stages. Default: every stage of the table.
func Stages(stages ...golden.Stage) Option {
	return func(c *config) error {
		for _, s := range stages {
			if int(s) >= golden.NumStages {
				return fmt.Errorf("gretatest.Stages: stage %d is not in the table", s)
			}
		}
		c.stages = append([]golden.Stage(nil), stages...)
		return nil
	}
}

// MaxNewTokens sets how many tokens are generated (and traced) after the prompt. Default: 5.
func MaxNewTokens(n int) Option {
	return func(c *config) error {
		if n < 0 {
			return fmt.Errorf("gretatest.MaxNewTokens: %d is negative", n)
		}
		c.maxNew = n
		return nil
	}
}

// Model sets the model: an embedded test model, "tiny", "tiny-llama3" or "tiny-qwen2"
// (generated in memory: see model.Open), or a GGUF path. Default: GRETA_MODEL, else "tiny".
func Model(spec string) Option {
	return func(c *config) error { c.model = spec; return nil }
}

// LoadedModel uses a model already in memory, named name in golden paths (this module's
// tests share one tiny model this way). Default: none (Model's spec is opened).
func LoadedModel(name string, m *model.Model) Option {
	return func(c *config) error { c.model, c.loaded = name, m; return nil }
}

// Engine sets the backend under test to the engine open builds, named name in messages and
// manifests: an engine of another module, passed by value (see package engine for the
// contract). Its Device names the golden files it is compared with exactly; a device
// without goldens of its own is compared with the CPU reference's under the tolerance
// policy. With injected faults, the engine without them is the live baseline. Default:
// none (Backend's engine).
func Engine(name string, open engine.Factory) Option {
	return func(c *config) error {
		switch {
		case open == nil:
			return fmt.Errorf("gretatest.Engine(%q): no factory", name)
		case name == "" || strings.HasPrefix(name, execPrefix):
			return fmt.Errorf("gretatest.Engine(%q): want a name that is not empty and does not start with %q", name, execPrefix)
		}
		if c.engines == nil {
			c.engines = map[string]engine.Factory{}
		}
		c.engines[name], c.backend = open, name
		return nil
	}
}

// Backend sets the backend under test: a registered engine ("cpu"; "hip" under the rocm
// build tag) or "exec:COMMAND" for an external engine (see the package documentation).
// Default: GRETA_BACKEND, else "cpu" ("hip" when built with -tags rocm).
func Backend(name string) Option {
	return func(c *config) error { c.backend = name; return nil }
}

// Reference sets the backend run live when a baseline record is not in the golden file (the
// layers and positions self-bisection traces beyond the plan). Default: "cpu"; with injected
// faults, the backend under test itself: its clean run differs from the faulty one only by
// the faults, so every comparison stays exact and a rehearsal on a GPU localises as sharply
// as on the CPU (against the CPU, a fault near the tolerance could be placed late).
func Reference(name string) Option {
	return func(c *config) error { c.reference, c.refSet = name, true; return nil }
}

// ExecTimeout bounds each run of an external engine (exec: backends): one that has not exited
// by then is killed with its whole process group and reported as a HANG, localised like a
// crash. 0 waits forever. Default: GRETA_EXEC_TIMEOUT, else 30 minutes.
func ExecTimeout(d time.Duration) Option {
	return func(c *config) error {
		if d < 0 {
			return fmt.Errorf("gretatest.ExecTimeout: %v is negative", d)
		}
		c.timeout = &d
		return nil
	}
}

// Baseline compares against a live run of the reference backend instead of the golden
// files (nothing is read or written under the golden folder). Default: off.
func Baseline() Option {
	return func(c *config) error { c.live = true; return nil }
}

// Inject adds faults to the backend under test (before tracing, so everything downstream
// sees them). Default: the faults of GRETA_INJECT, replaced by this option.
func Inject(faults ...engine.Fault) Option {
	return func(c *config) error {
		c.faults, c.faultsSet = append([]engine.Fault(nil), faults...), true
		return nil
	}
}

// InjectSpec is Inject with faults written as GRETA_INJECT writes them
// ("stage=k_post_rope,layer=3,pos>=826,scale=1.001"; see engine.ParseFaults).
func InjectSpec(spec string) Option {
	return func(c *config) error {
		faults, err := engine.ParseFaults(spec)
		if err != nil {
			return fmt.Errorf("gretatest.InjectSpec: %w", err)
		}
		return Inject(faults...)(c)
	}
}

// Policy overrides the comparison policy. Default: exact when the golden comes from the same
// device as the backend under test, golden.Tolerance's float32 defaults otherwise.
func Policy(p golden.Policy) Option {
	return func(c *config) error { c.policy = &p; return nil }
}

// GoldenDir sets the root of the golden files; each lives at
// <dir>/<device>/<model>/<prompt_id>_trace.jsonl. Default: golden/testdata under the root of
// the enclosing module (the nearest folder with a go.mod).
func GoldenDir(dir string) Option {
	return func(c *config) error { c.goldenDir = dir; return nil }
}

// Artifacts sets the folder receiving reports and traces, laid out as
// <dir>/<date>/<suite>/... and kept. Default: GRETA_ARTIFACTS, else a temporary folder that
// is removed when the test passes and kept (its path logged) when it fails.
func Artifacts(dir string) Option {
	return func(c *config) error { c.artifacts = dir; return nil }
}

// NoArtifacts writes no reports or traces (large suites of expected failures use it).
// Default: off.
func NoArtifacts() Option {
	return func(c *config) error { c.noArtifacts = true; return nil }
}

// RecordWith sets the command a missing golden's message gives to record it (tools that run
// Bisect outside go test give their own). Default: the go test command of the test, with
// -update.
func RecordWith(command string) Option {
	return func(c *config) error { c.recordCmd = command; return nil }
}

// Suite names the run in the artifacts layout. Default: "b3_61".
func Suite(name string) Option {
	return func(c *config) error { c.suite = name; return nil }
}

// Calibrate measures the noise floors of the backend under test instead of comparing: on a
// known-good build, the own error of every (stage, layer) against the reference backend,
// every layer replayed on the reference's inputs at the planned positions of each prompt,
// and writes the worst of each to <GoldenDir>/<device>/<model>/noise.json, where the replay
// policy reads them. Report.Calibration holds them and their margins against the default
// floors. Refused with injected faults, and for a backend that cannot replay. Default: off.
func Calibrate() Option {
	return func(c *config) error { c.calibrate = true; return nil }
}

// NoSelfBisect reports the first traced divergence without re-running to isolate its origin.
// Default: off.
func NoSelfBisect() Option {
	return func(c *config) error { c.noBisect = true; return nil }
}

// Share makes Bisect keep models and reference runs in cache and reuse them: calls that
// compare against the same model, prompt and plan load the model and run the reference
// once. The caller closes the cache (Cache.Close) when done. Default: a cache per call,
// closed when it returns.
func Share(cache *Cache) Option {
	return func(c *config) error { c.cache = cache; return nil }
}

// Progress receives progress reports of every traced run. Default: none.
func Progress(f func(promptID string, done, total int)) Option {
	return func(c *config) error { c.progress = f; return nil }
}

// Update records the golden files (on) or compares with them (off). Default: the -update
// flag of go test, or GOLDIE_UPDATE=1.
func Update(on bool) Option {
	return func(c *config) error { c.update = &on; return nil }
}

// updating reports whether golden files are being re-recorded.
func (c *config) updating() bool {
	if c.update != nil {
		return *c.update
	}
	return testutil.Update()
}
