package gretatest

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/trace"
)

// Version is gretabisect's version. Golden manifests record it: a golden set made by another
// version is still compared (the trace format is stable), with a note.
const Version = "0.5.0"

// ManifestFile is the file beside a golden set (<golden>/<device>/<model>/) that says what
// produced each of its traces.
const ManifestFile = "manifest.json"

// manifest is ManifestFile: per prompt, everything a golden trace's hashes depend on besides
// the arithmetic being tested. It holds no timestamp and no commit, so -update twice writes
// the same bytes.
type manifest struct {
	Tool    string                   `json:"tool"`
	Prompts map[string]manifestEntry `json:"prompts"` // by prompt id
}

type manifestEntry struct {
	Version string `json:"version"`
	Model   struct {
		Name     string       `json:"name"`
		SHA256   string       `json:"sha256"` // of the GGUF file; "" for a model built in memory
		FileType string       `json:"file_type"`
		Config   model.Config `json:"config"`
	} `json:"model"`
	Tokenizer string `json:"tokenizer_sha256"` // of the tokenizer.* metadata; "" when unknown
	Prompt    struct {
		Tokens int    `json:"tokens"`
		SHA256 string `json:"sha256"` // of the token ids, BOS included
	} `json:"prompt"`
	Plan    planJSON `json:"plan"`
	Backend struct {
		Name    string `json:"name"`
		Device  string `json:"device"`
		Variant string `json:"variant"` // the engine's build of its arithmetic, when it says
	} `json:"backend"`
}

// planJSON is a trace.Plan with stage names.
type planJSON struct {
	Layers       []int    `json:"layers"`
	AllLayers    bool     `json:"all_layers"`
	Positions    []int    `json:"positions"`
	Last         bool     `json:"last"`
	Windows      bool     `json:"windows"`
	AllPositions bool     `json:"all_positions"`
	Stages       []string `json:"stages"` // empty: every stage
	Prefill      bool     `json:"prefill"`
	Decode       bool     `json:"decode"`
	MaxNewTokens int      `json:"max_new_tokens"`
}

func planOf(p trace.Plan) planJSON {
	j := planJSON{Layers: p.Layers, AllLayers: p.AllLayers, Positions: p.Positions, Last: p.Last, Windows: p.Windows,
		AllPositions: p.AllPositions, Prefill: p.Prefill, Decode: p.Decode, MaxNewTokens: p.MaxNewTokens, Stages: []string{}}
	if j.Layers == nil {
		j.Layers = []int{}
	}
	if j.Positions == nil {
		j.Positions = []int{}
	}
	for _, st := range p.Stages {
		j.Stages = append(j.Stages, st.String())
	}
	return j
}

func (p planJSON) String() string {
	layers := "all"
	if !p.AllLayers {
		layers = ints(p.Layers)
	}
	var pos []string
	switch {
	case p.AllPositions:
		pos = []string{"all"}
	default:
		if len(p.Positions) > 0 {
			pos = append(pos, ints(p.Positions))
		}
		if p.Last {
			pos = append(pos, "last")
		}
		if p.Windows {
			pos = append(pos, "windows")
		}
	}
	stages := "all"
	if len(p.Stages) > 0 {
		stages = strings.Join(p.Stages, ",")
	}
	var phases []string
	if p.Prefill {
		phases = append(phases, "prefill")
	}
	if p.Decode {
		phases = append(phases, "decode")
	}
	return fmt.Sprintf("layers %s, positions %s, stages %s, phases %s, %d new tokens",
		layers, strings.Join(pos, ","), stages, strings.Join(phases, "+"), p.MaxNewTokens)
}

// covers reports whether every row q selects for a model of nLayer layers and a prompt of
// nPrompt tokens is among p's.
func (p planJSON) covers(q planJSON, nLayer, nPrompt int) bool {
	pp, pok := p.plan()
	qp, qok := q.plan()
	if !pok || !qok {
		return reflect.DeepEqual(p, q)
	}
	ps, qs := pp.Resolve(nLayer, nPrompt), qp.Resolve(nLayer, nPrompt)
	for _, k := range qs.Keys("", golden.CausalCompare) {
		st, _ := golden.StageByName(k.TensorName)
		if !ps.Want(st, k.Layer, k.PosID) {
			return false
		}
	}
	return true
}

// plan is p as a trace.Plan; ok is false when a stage name is outside the table.
func (p planJSON) plan() (t trace.Plan, ok bool) {
	t = trace.Plan{Layers: p.Layers, AllLayers: p.AllLayers, Positions: p.Positions, Last: p.Last, Windows: p.Windows,
		AllPositions: p.AllPositions, Prefill: p.Prefill, Decode: p.Decode, MaxNewTokens: p.MaxNewTokens}
	for _, name := range p.Stages {
		st, ok := golden.StageByName(name)
		if !ok {
			return t, false
		}
		t.Stages = append(t.Stages, st)
	}
	return t, true
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = fmt.Sprint(x)
	}
	return strings.Join(s, ",")
}

// modelDigests hashes a model's file and vocabulary once per model: a 4 GB file takes
// seconds.
var modelDigests sync.Map // *model.Model -> *modelDigest

type modelDigest struct {
	once             sync.Once
	file, tok, fType string
	err              error
}

func digestsOf(m *model.Model) (file, tok string, err error) {
	v, _ := modelDigests.LoadOrStore(m, &modelDigest{})
	d := v.(*modelDigest)
	d.once.Do(func() {
		if m.File == nil {
			return // built in memory: nothing to hash
		}
		d.file = m.File.SHA256()
		d.tok, d.err = m.File.KVDigest("tokenizer.")
	})
	return d.file, d.tok, d.err
}

// manifestEntry describes the run r of this session.
func (s *session) manifestEntry(r run) (manifestEntry, error) {
	var e manifestEntry
	e.Version = Version
	file, tok, err := digestsOf(s.m)
	if err != nil {
		return e, fmt.Errorf("manifest: %w", err)
	}
	e.Model.Name, e.Model.SHA256, e.Model.FileType, e.Model.Config = s.modelName, file, s.m.FileType, s.m.Config
	e.Tokenizer = tok
	h := sha256.New()
	for _, t := range r.tokens {
		binary.Write(h, binary.LittleEndian, t)
	}
	e.Prompt.Tokens, e.Prompt.SHA256 = len(r.tokens), hex.EncodeToString(h.Sum(nil))
	e.Plan = planOf(r.plan)
	e.Backend.Name, e.Backend.Device, e.Backend.Variant = s.cfg.backend, s.cut.Device(), s.cut.Variant()
	return e, nil
}

// manifestMu serialises the read-modify-write of manifests by Bisect calls running in
// parallel in one test binary.
var manifestMu sync.Mutex

// recordManifest sets the entry of promptID in the manifest beside the golden at
// goldenPath, keeping the other prompts' entries.
func recordManifest(goldenPath, promptID string, e manifestEntry) error {
	manifestMu.Lock()
	defer manifestMu.Unlock()
	path := filepath.Join(filepath.Dir(goldenPath), ManifestFile)
	m, err := readManifest(path)
	if errors.Is(err, fs.ErrNotExist) {
		m, err = &manifest{}, nil
	}
	if err != nil {
		return err
	}
	m.Tool = "gretabisect"
	if m.Prompts == nil {
		m.Prompts = map[string]manifestEntry{}
	}
	m.Prompts[promptID] = e
	return golden.WriteFileAtomic(path, func(w io.Writer) error {
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
}

func readManifest(path string) (*manifest, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &m, nil
}

// checkManifest compares this run with what produced the golden at goldenPath. It returns
// an error when they differ in anything that changes the hashes other than the arithmetic
// under test (the model file, the tokenizer, the prompt's tokens, the plan, and for the
// device's own goldens the backend's variant), and notes for what only deserves a word.
// A golden set without a manifest is compared as before, with a note.
func checkManifest(goldenPath, promptID string, run manifestEntry, sameDevice bool) (notes []string, err error) {
	path := filepath.Join(filepath.Dir(goldenPath), ManifestFile)
	m, err := readManifest(path)
	if errors.Is(err, fs.ErrNotExist) {
		return []string{fmt.Sprintf("no %s beside the golden: what recorded it is unknown", ManifestFile)}, nil
	}
	if err != nil {
		return nil, err
	}
	g, ok := m.Prompts[promptID]
	if !ok {
		return []string{fmt.Sprintf("%s has no entry for %s: what recorded its golden is unknown", path, promptID)}, nil
	}
	differs := func(what, golden, this string) error {
		return fmt.Errorf("golden recorded with %s %s, this run uses %s: not compared (the hashes would differ whatever the engine does)", what, golden, this)
	}
	switch {
	case g.Model.SHA256 != "" && run.Model.SHA256 != "" && g.Model.SHA256 != run.Model.SHA256:
		return nil, differs("model sha256", short(g.Model.SHA256), short(run.Model.SHA256))
	case g.Tokenizer != "" && run.Tokenizer != "" && g.Tokenizer != run.Tokenizer:
		return nil, differs("tokenizer sha256", short(g.Tokenizer), short(run.Tokenizer))
	case g.Prompt.SHA256 != run.Prompt.SHA256:
		return nil, differs("prompt tokens", fmt.Sprintf("sha256 %s (%d tokens)", short(g.Prompt.SHA256), g.Prompt.Tokens),
			fmt.Sprintf("sha256 %s (%d tokens)", short(run.Prompt.SHA256), run.Prompt.Tokens))
	case !g.Plan.covers(run.Plan, run.Model.Config.NLayer, run.Prompt.Tokens):
		// A plan only chooses rows: a run tracing fewer (fewer layers, fewer generated
		// tokens) is compared on them.
		return nil, fmt.Errorf("golden recorded with plan %s, this run uses %s, which traces rows the golden lacks: not compared",
			quote(g.Plan.String()), quote(run.Plan.String()))
	case sameDevice && g.Backend.Variant != run.Backend.Variant:
		return nil, differs(g.Backend.Device+" kernel variant", quote(g.Backend.Variant), quote(run.Backend.Variant))
	}
	if g.Version != run.Version {
		notes = append(notes, fmt.Sprintf("golden recorded by gretabisect %s, this is %s", g.Version, run.Version))
	}
	return notes, nil
}

func short(h string) string {
	if len(h) > 8 {
		return h[:8] + ".."
	}
	return h
}

func quote(s string) string { return "\"" + s + "\"" }
