package engine

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
//	stage=NAME      required: a tensor_name of the stage table (k_post_rope, logits, ...)
//	layer=N|*       the model layer; * or omitted: every layer (ignored for embed_out, logits)
//
// which positions (omitted: every position):
//
//	pos=N           one position; also pos>=N, pos<=N, pos=A..B
//	every=N         only every Nth position (N >= 2), those with p % N == phase: a tile boundary
//	phase=K         0 <= K < N (default 0); needs every
//
// which channels of a row (omitted: all of them; at most one of the two):
//
//	head=H|A..B     head H, or heads A..B, in units of the model's head_dim
//	ch=N|A..B       channel N, or channels A..B (0-based, inclusive)
//
// and what happens to each element touched (one kind; scale and add combine):
//
//	scale=X         multiply (default 1)
//	add=X           then add X (default 0)
//	zero            +0, a write that never happened
//	nan, inf        a quiet NaN, +Inf
//	sign            flip the sign
//	round=f16|bf16  round to half precision or bfloat16, ties to even, as a kernel storing
//	                its output in that type does
//	shift=K         the row at position p takes the clean row of position p-K, as an
//	                off-by-K index would (K >= 1; positions before K keep their row; not for
//	                logits, which exist only at traced positions)
//
// for example "stage=k_post_rope,layer=3,pos>=826,scale=1.001" or
// "stage=attn_ctx,layer=1,head=2,every=16,phase=3,zero". A fault must change something and
// touch some position; heads and channels are checked against the model's rows when the
// fault meets a model (ResolveFaults). Empty faults (a trailing ';') are ignored; an empty
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

// kindWords are the kinds given by a bare word.
var kindWords = map[string]Kind{"zero": Zero, "nan": NaN, "inf": Inf, "sign": Sign}

// roundKinds are the values of round=.
var roundKinds = map[string]Kind{"f16": RoundF16, "bf16": RoundBF16}

func parseFault(s string) (Fault, error) {
	f := Fault{Layer: AnyLayer, PosMin: 0, PosMax: -1, Scale: 1}
	seen := map[string]bool{}
	var kinds []string // the fields that chose a kind, in order
	for _, field := range strings.Split(s, ",") {
		field = strings.TrimSpace(field)
		name, op, val, ok := splitField(field)
		if k, isWord := kindWords[field]; isWord {
			name, op, ok = field, "", true
			f.Kind = k
		} else if _, isWord := kindWords[name]; isWord && ok {
			return f, fmt.Errorf("field %q takes no value (write %s alone)", name, name)
		}
		if !ok {
			return f, fmt.Errorf("field %q: want name=value, or one of zero, nan, inf, sign", field)
		}
		if seen[name] {
			return f, fmt.Errorf("field %q given twice", name)
		}
		seen[name] = true
		if op != "=" && op != "" && name != "pos" {
			return f, fmt.Errorf("field %q: operator %q is only allowed for pos", name, op)
		}
		var err error
		switch name {
		case "stage":
			st, ok := golden.StageByName(val)
			if !ok {
				return f, fmt.Errorf("field \"stage\": unknown stage %q", val)
			}
			f.Stage = st
		case "layer":
			if val != "*" {
				f.Layer, err = parseNonNeg(val)
			}
		case "pos":
			f.PosMin, f.PosMax, err = parsePos(op, val)
		case "every":
			if f.Every, err = parseNonNeg(val); err == nil && f.Every < 2 {
				err = fmt.Errorf("%q: want a period of 2 or more (every position is the default)", val)
			}
		case "phase":
			f.Phase, err = parseNonNeg(val)
		case "head":
			f.HeadLo, f.HeadLen, err = parseSpan(val)
		case "ch":
			f.ChLo, f.ChLen, err = parseSpan(val)
		case "scale":
			f.Scale, err = parseFloat(val)
			kinds = append(kinds, name)
		case "add":
			f.Add, err = parseFloat(val)
			kinds = append(kinds, name)
		case "round":
			k, ok := roundKinds[val]
			if !ok {
				err = fmt.Errorf("%q: want f16 or bf16", val)
			}
			f.Kind = k
			kinds = append(kinds, name)
		case "shift":
			if f.Shift, err = parseNonNeg(val); err == nil && f.Shift < 1 {
				err = fmt.Errorf("%q: want a shift of 1 or more positions", val)
			}
			f.Kind = Shift
			kinds = append(kinds, name)
		case "zero", "nan", "inf", "sign":
			kinds = append(kinds, name)
		default:
			return f, fmt.Errorf("unknown field %q (want stage, layer, pos, every, phase, head, ch, scale, add, zero, nan, inf, sign, round, shift)", name)
		}
		if err != nil {
			return f, fmt.Errorf("field %q: %w", name, err)
		}
	}
	return f, checkFault(f, seen, kinds)
}

// checkFault refuses the combinations that cannot work.
func checkFault(f Fault, seen map[string]bool, kinds []string) error {
	switch {
	case !seen["stage"]:
		return fmt.Errorf("field \"stage\" missing")
	case seen["phase"] && !seen["every"]:
		return fmt.Errorf("field \"phase\" needs every=N")
	case f.Every > 0 && f.Phase >= f.Every:
		return fmt.Errorf("field \"phase\": %d is not below every=%d", f.Phase, f.Every)
	case seen["head"] && seen["ch"]:
		return fmt.Errorf("fields \"head\" and \"ch\": give one of them")
	}
	if f.Every > 0 {
		// The first position at or after PosMin in the phase.
		first := f.PosMin + ((f.Phase-f.PosMin%f.Every)%f.Every+f.Every)%f.Every
		if f.PosMax >= 0 && first > f.PosMax {
			return fmt.Errorf("fields \"pos\" and \"every\": no position in pos%s has p %% %d == %d", posText(f), f.Every, f.Phase)
		}
	}
	if len(kinds) > 1 && !(len(kinds) == 2 && seen["scale"] && seen["add"]) {
		return fmt.Errorf("fields %q: give one kind (scale and add may go together)", kinds)
	}
	switch {
	case f.Kind == Affine && f.Scale == 1 && f.Add == 0:
		return fmt.Errorf("fields \"scale\" and \"add\": the fault changes nothing (give scale != 1 or add != 0, or another kind)")
	case f.Kind == Shift && f.Stage == golden.Logits:
		return fmt.Errorf("field \"shift\": logits exist only at traced positions, so there is no earlier row to take")
	case f.Kind == Shift && f.PosMax >= 0 && f.PosMax < f.Shift:
		return fmt.Errorf("field \"shift\": positions pos%s have no row %d positions earlier", posText(f), f.Shift)
	}
	return nil
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
	if p := posText(f); p != "" {
		b.WriteString(",pos" + p)
	}
	if f.Every > 0 {
		fmt.Fprintf(&b, ",every=%d", f.Every)
		if f.Phase != 0 {
			fmt.Fprintf(&b, ",phase=%d", f.Phase)
		}
	}
	if f.HeadLen > 0 {
		b.WriteString(",head=" + spanText(f.HeadLo, f.HeadLen))
	}
	if f.ChLen > 0 {
		b.WriteString(",ch=" + spanText(f.ChLo, f.ChLen))
	}
	switch f.Kind {
	case Affine:
		if f.Scale != 1 {
			b.WriteString(",scale=" + strconv.FormatFloat(float64(f.Scale), 'g', -1, 32))
		}
		if f.Add != 0 {
			b.WriteString(",add=" + strconv.FormatFloat(float64(f.Add), 'g', -1, 32))
		}
	case Shift:
		fmt.Fprintf(&b, ",shift=%d", f.Shift)
	default:
		b.WriteString("," + f.Kind.String())
	}
	return b.String()
}

// String names a kind as ParseFaults reads it: zero, nan, inf, sign, round=f16, ...
func (k Kind) String() string {
	for w, kk := range kindWords {
		if kk == k {
			return w
		}
	}
	for w, kk := range roundKinds {
		if kk == k {
			return "round=" + w
		}
	}
	switch k {
	case Affine:
		return "scale/add"
	case Shift:
		return "shift"
	}
	return fmt.Sprintf("kind(%d)", k)
}

// posText writes the positions of f after "pos" (">=826", "=3..7"), "" for every position.
func posText(f Fault) string {
	switch {
	case f.PosMin == 0 && f.PosMax < 0:
		return ""
	case f.PosMax < 0:
		return fmt.Sprintf(">=%d", f.PosMin)
	case f.PosMin == f.PosMax:
		return fmt.Sprintf("=%d", f.PosMin)
	case f.PosMin == 0:
		return fmt.Sprintf("<=%d", f.PosMax)
	}
	return fmt.Sprintf("=%d..%d", f.PosMin, f.PosMax)
}

// parseSpan parses "N" or "A..B" into a start and a count.
func parseSpan(val string) (lo, n int, err error) {
	a, b, isRange := strings.Cut(val, "..")
	if lo, err = parseNonNeg(a); err != nil || !isRange {
		return lo, 1, err
	}
	hi, err := parseNonNeg(b)
	if err != nil {
		return 0, 0, err
	}
	if hi < lo {
		return 0, 0, fmt.Errorf("empty range %q", val)
	}
	return lo, hi - lo + 1, nil
}

// FormatFaults formats faults in the syntax ParseFaults reads.
func FormatFaults(faults []Fault) string {
	parts := make([]string, len(faults))
	for i, f := range faults {
		parts[i] = f.String()
	}
	return strings.Join(parts, ";")
}
