// Package trace turns what a run should record into the engine API's selection (Plan,
// Resolve, the seed's environment variables) and the rows an engine hands over into trace
// records (Recorder).
package trace

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
	"github.com/gretabisect/gretabisect/gretatest/engine"
)

// WindowLen is the number of consecutive positions in each of the early, middle and late
// windows of a plan.
const WindowLen = 16

// Defaults of DefaultPlan.
var (
	DefaultLayers    = []int{0, 1, 2, 4, 8}
	DefaultPositions = []int{826, 1652} // where the seed saw long-context collapse
)

// DefaultMaxNewTokens is the number of tokens generated after the prompt by default.
const DefaultMaxNewTokens = 5

// Plan says what to record for one prompt, independently of the model and prompt length;
// Resolve turns it into a Selection. The zero Plan records nothing and generates nothing:
// start from DefaultPlan.
type Plan struct {
	Layers    []int // model layers whose per-layer stages are traced
	AllLayers bool  // every layer (Layers ignored)

	Positions    []int // prompt positions (critical positions)
	Last         bool  // the last prompt position
	Windows      bool  // WindowLen positions early (from 0), middle (centred) and late (ending at the last)
	AllPositions bool  // every prompt position (Positions, Last and Windows ignored)

	Stages []golden.Stage // stages to trace; empty means every stage of the table

	Prefill bool // trace prompt positions (phases prefill and prefill_last)
	Decode  bool // trace every generated position (phase decode)

	MaxNewTokens int // tokens greedily generated after the prompt, each run through the model
}

// DefaultPlan is the seed's plan: layers 0,1,2,4,8; positions 826, 1652, the last prompt
// position and the three windows; every stage; both phases; 5 new tokens.
func DefaultPlan() Plan {
	return Plan{
		Layers:       append([]int(nil), DefaultLayers...),
		Positions:    append([]int(nil), DefaultPositions...),
		Last:         true,
		Windows:      true,
		Prefill:      true,
		Decode:       true,
		MaxNewTokens: DefaultMaxNewTokens,
	}
}

// Resolve selects the rows of p for a model of nLayer layers and a prompt of nPrompt tokens
// followed by p.MaxNewTokens generated ones. Layers and positions beyond the model or the
// prompt are dropped, not errors: one plan serves every model and prompt.
func (p Plan) Resolve(nLayer, nPrompt int) *engine.Selection {
	layers := p.Layers
	if p.AllLayers {
		layers = seq(0, nLayer)
	}
	stages := p.Stages
	if len(stages) == 0 {
		for _, s := range golden.Stages() {
			stages = append(stages, s.Stage)
		}
	}
	var pos []int
	if p.Prefill {
		pos = append(pos, p.promptPositions(nPrompt)...)
	}
	if p.Decode {
		pos = append(pos, seq(nPrompt, nPrompt+p.MaxNewTokens)...)
	}
	return engine.NewSelection(stages, layers, nLayer, pos, nPrompt+max(p.MaxNewTokens, 0))
}

// promptPositions lists the planned prompt positions (unsorted, maybe repeated, maybe out of
// range: NewSelection filters).
func (p Plan) promptPositions(nPrompt int) []int {
	if p.AllPositions {
		return seq(0, nPrompt)
	}
	pos := make([]int, 0, len(p.Positions)+1+3*WindowLen)
	for _, q := range p.Positions {
		if q < nPrompt {
			pos = append(pos, q)
		}
	}
	if p.Last && nPrompt > 0 {
		pos = append(pos, nPrompt-1)
	}
	if p.Windows {
		mid := max((nPrompt-WindowLen)/2, 0)
		late := max(nPrompt-WindowLen, 0)
		for _, start := range []int{0, mid, late} {
			pos = append(pos, seq(start, min(start+WindowLen, nPrompt))...)
		}
	}
	return pos
}

func seq(lo, hi int) []int {
	var out []int
	for i := lo; i < hi; i++ {
		out = append(out, i)
	}
	return out
}

// SetLayers parses a layer list as the CLI and GRETA_TRACE_STAGE_LAYERS write it: "all" or
// comma-separated non-negative integers ("0,1,2,4,8").
func (p *Plan) SetLayers(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "all") {
		p.Layers, p.AllLayers = nil, true
		return nil
	}
	layers, err := parseInts(s)
	if err != nil {
		return fmt.Errorf("layers %q: %w", s, err)
	}
	p.Layers, p.AllLayers = layers, false
	return nil
}

// SetPositions parses a position list as the CLI writes it: "all", or comma-separated
// non-negative integers and the words "last" and "windows" ("826,1652,last,windows").
func (p *Plan) SetPositions(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "all") {
		p.Positions, p.Last, p.Windows, p.AllPositions = nil, false, false, true
		return nil
	}
	var q Plan
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		switch strings.ToLower(f) {
		case "last":
			q.Last = true
		case "windows":
			q.Windows = true
		default:
			n, err := parseInt(f)
			if err != nil {
				return fmt.Errorf("positions %q: %w (want integers, last, windows or all)", s, err)
			}
			q.Positions = append(q.Positions, n)
		}
	}
	p.Positions, p.Last, p.Windows, p.AllPositions = q.Positions, q.Last, q.Windows, false
	return nil
}

// SetStages parses "all" or comma-separated tensor names of the stage table.
func (p *Plan) SetStages(s string) error {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "all") {
		p.Stages = nil
		return nil
	}
	var stages []golden.Stage
	for _, f := range strings.Split(s, ",") {
		st, ok := golden.StageByName(strings.TrimSpace(f))
		if !ok {
			return fmt.Errorf("stages %q: unknown stage %q", s, strings.TrimSpace(f))
		}
		stages = append(stages, st)
	}
	sort.Slice(stages, func(i, j int) bool { return stages[i] < stages[j] })
	p.Stages = stages
	return nil
}

func parseInts(s string) ([]int, error) {
	if s == "" {
		return nil, fmt.Errorf("empty list")
	}
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := parseInt(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func parseInt(f string) (int, error) {
	n, err := strconv.Atoi(f)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative integer", f)
	}
	return n, nil
}
