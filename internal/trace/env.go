package trace

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
)

// The seed's environment variables (ARCHITECTURE.md section 4).
const (
	EnvStageLayers = "GRETA_TRACE_STAGE_LAYERS"  // "0,1,2,4,8" or "all"
	EnvStagePrefix = "GRETA_TRACE_B3_61_"        // + upper-cased stage name, =1 traces the stage
	EnvPosPrefix   = EnvStagePrefix + "POS_"     // + position, =1 makes it a critical position
	envStageSuffix = "GRETA_TRACE_B3_61_<STAGE>" // for messages
)

// PlanFromEnv applies the seed's trace variables found in environ (os.Environ's form) to p:
// GRETA_TRACE_STAGE_LAYERS replaces the layers; when any GRETA_TRACE_B3_61_<STAGE> toggle is
// set, only the stages toggled on are traced; when any GRETA_TRACE_B3_61_POS_<N> is set, the
// positions toggled on replace the critical positions. A toggle's value is a boolean ("1",
// "0", "true", ...). Bad values and unknown stages are errors naming the variable.
func PlanFromEnv(p Plan, environ []string) (Plan, error) {
	var (
		stages    []golden.Stage
		anyStage  bool
		positions []int
		anyPos    bool
	)
	for _, kv := range environ {
		name, val, _ := strings.Cut(kv, "=")
		switch {
		case name == EnvStageLayers:
			if err := p.SetLayers(val); err != nil {
				return p, fmt.Errorf("%s: %w", name, err)
			}
		case strings.HasPrefix(name, EnvPosPrefix):
			pos, err := parseInt(strings.TrimPrefix(name, EnvPosPrefix))
			if err != nil {
				return p, fmt.Errorf("%s: position %w", name, err)
			}
			on, err := strconv.ParseBool(strings.TrimSpace(val))
			if err != nil {
				return p, fmt.Errorf("%s=%q: want 1 or 0", name, val)
			}
			anyPos = true
			if on {
				positions = append(positions, pos)
			}
		case strings.HasPrefix(name, EnvStagePrefix):
			stage, ok := golden.StageByName(strings.ToLower(strings.TrimPrefix(name, EnvStagePrefix)))
			if !ok {
				return p, fmt.Errorf("%s: unknown stage in %s (stages: %s)", name, envStageSuffix, stageNamesUpper())
			}
			on, err := strconv.ParseBool(strings.TrimSpace(val))
			if err != nil {
				return p, fmt.Errorf("%s=%q: want 1 or 0", name, val)
			}
			anyStage = true
			if on {
				stages = append(stages, stage)
			}
		}
	}
	if anyStage {
		if len(stages) == 0 {
			return p, fmt.Errorf("%s: every stage toggle is off, nothing would be traced", envStageSuffix)
		}
		sort.Slice(stages, func(i, j int) bool { return stages[i] < stages[j] })
		p.Stages = stages
	}
	if anyPos {
		sort.Ints(positions)
		p.Positions, p.AllPositions = positions, false
	}
	return p, nil
}

// EnvPlan is DefaultPlan with the process environment applied.
func EnvPlan() (Plan, error) { return PlanFromEnv(DefaultPlan(), os.Environ()) }

func stageNamesUpper() string {
	var names []string
	for _, s := range golden.Stages() {
		names = append(names, strings.ToUpper(s.Name))
	}
	return strings.Join(names, ",")
}
