package trace

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
)

// ParseFaults parses a fault specification, the value of GRETA_INJECT: one or more faults
// separated by ';', each a comma-separated list of fields:
//
//	stage=NAME    required: a tensor_name of the stage table (k_post_rope, logits, ...)
//	layer=N|*     the model layer; * or omitted: every layer (ignored for embed_out, logits)
//	pos=N         one position; also pos>=N, pos<=N, pos=A..B; omitted: every position
//	scale=X       multiply each element (default 1)
//	add=X         then add X (default 0)
//
// for example "stage=k_post_rope,layer=3,pos>=826,scale=1.001". A fault must change
// something (scale != 1 or add != 0). Empty faults (a trailing ';') are ignored; an empty
// spec gives no faults. Errors name the fault and the field.
func ParseFaults(spec string) ([]Fault, error) {
	var out []Fault
	for i, part := range strings.Split(spec, ";") {
		if strings.TrimSpace(part) == "" {
			continue
		}
		f, err := parseFault(part)
		if err != nil {
			return nil, fmt.Errorf("fault %d %q: %w", i+1, strings.TrimSpace(part), err)
		}
		out = append(out, f)
	}
	return out, nil
}

func parseFault(s string) (Fault, error) {
	f := Fault{Layer: AnyLayer, PosMin: 0, PosMax: -1, Scale: 1}
	seen := map[string]bool{}
	haveStage := false
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		name, op, val, ok := splitField(field)
		if !ok {
			return f, fmt.Errorf("field %q: want name=value", field)
		}
		if seen[name] {
			return f, fmt.Errorf("field %q given twice", name)
		}
		seen[name] = true
		if op != "=" && name != "pos" {
			return f, fmt.Errorf("field %q: operator %q is only allowed for pos", name, op)
		}
		var err error
		switch name {
		case "stage":
			st, ok := golden.StageByName(val)
			if !ok {
				return f, fmt.Errorf("field \"stage\": unknown stage %q", val)
			}
			f.Stage, haveStage = st, true
		case "layer":
			if val != "*" {
				f.Layer, err = parseNonNeg(val)
			}
		case "pos":
			f.PosMin, f.PosMax, err = parsePos(op, val)
		case "scale":
			f.Scale, err = parseFloat(val)
		case "add":
			f.Add, err = parseFloat(val)
		default:
			return f, fmt.Errorf("unknown field %q (want stage, layer, pos, scale, add)", name)
		}
		if err != nil {
			return f, fmt.Errorf("field %q: %w", name, err)
		}
	}
	if !haveStage {
		return f, fmt.Errorf("field \"stage\" missing")
	}
	if f.Scale == 1 && f.Add == 0 {
		return f, fmt.Errorf("fields \"scale\" and \"add\": the fault changes nothing (give scale != 1 or add != 0)")
	}
	return f, nil
}

// splitField splits "name=value", "name>=value" or "name<=value".
func splitField(field string) (name, op, val string, ok bool) {
	i := strings.IndexAny(field, "=<>")
	if i <= 0 {
		return "", "", "", false
	}
	name, rest := strings.TrimSpace(field[:i]), field[i:]
	for _, o := range []string{">=", "<=", "="} {
		if strings.HasPrefix(rest, o) {
			return name, o, strings.TrimSpace(rest[len(o):]), true
		}
	}
	return "", "", "", false
}

func parsePos(op, val string) (lo, hi int, err error) {
	switch op {
	case ">=":
		lo, err = parseNonNeg(val)
		return lo, -1, err
	case "<=":
		hi, err = parseNonNeg(val)
		return 0, hi, err
	}
	if a, b, ok := strings.Cut(val, ".."); ok {
		if lo, err = parseNonNeg(a); err != nil {
			return 0, 0, err
		}
		if hi, err = parseNonNeg(b); err != nil {
			return 0, 0, err
		}
		if hi < lo {
			return 0, 0, fmt.Errorf("empty range %q", val)
		}
		return lo, hi, nil
	}
	lo, err = parseNonNeg(val)
	return lo, lo, err
}

func parseNonNeg(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative integer", s)
	}
	return n, nil
}

func parseFloat(s string) (float32, error) {
	x, err := strconv.ParseFloat(s, 32)
	if err != nil || math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, fmt.Errorf("%q is not a finite number", s)
	}
	return float32(x), nil
}

// String formats f in the syntax ParseFaults reads.
func (f Fault) String() string {
	var b strings.Builder
	b.WriteString("stage=" + f.Stage.String())
	if f.Stage.Info().PerLayer && f.Layer != AnyLayer {
		fmt.Fprintf(&b, ",layer=%d", f.Layer)
	}
	switch {
	case f.PosMin == 0 && f.PosMax < 0:
	case f.PosMax < 0:
		fmt.Fprintf(&b, ",pos>=%d", f.PosMin)
	case f.PosMin == f.PosMax:
		fmt.Fprintf(&b, ",pos=%d", f.PosMin)
	case f.PosMin == 0:
		fmt.Fprintf(&b, ",pos<=%d", f.PosMax)
	default:
		fmt.Fprintf(&b, ",pos=%d..%d", f.PosMin, f.PosMax)
	}
	if f.Scale != 1 {
		b.WriteString(",scale=" + strconv.FormatFloat(float64(f.Scale), 'g', -1, 32))
	}
	if f.Add != 0 {
		b.WriteString(",add=" + strconv.FormatFloat(float64(f.Add), 'g', -1, 32))
	}
	return b.String()
}

// FormatFaults formats faults in the syntax ParseFaults reads.
func FormatFaults(faults []Fault) string {
	parts := make([]string, len(faults))
	for i, f := range faults {
		parts[i] = f.String()
	}
	return strings.Join(parts, ";")
}
