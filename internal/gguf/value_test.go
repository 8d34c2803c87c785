package gguf

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestValueAccessors(t *testing.T) {
	cases := []struct {
		v     Value
		typ   ValueType
		iface any
		str   string
	}{
		{ValueOf(uint8(7)), ValueUint8, uint8(7), "7"},
		{ValueOf(int8(-7)), ValueInt8, int8(-7), "-7"},
		{ValueOf(int16(-300)), ValueInt16, int16(-300), "-300"},
		{ValueOf(int32(-70000)), ValueInt32, int32(-70000), "-70000"},
		{ValueOf(int64(math.MinInt64)), ValueInt64, int64(math.MinInt64), "-9223372036854775808"},
		{ValueOf(float32(1e-5)), ValueFloat32, float32(1e-5), "1e-05"},
		{ValueOf(10000.0), ValueFloat64, 10000.0, "10000"},
		{ValueOf(false), ValueBool, false, "false"},
		{ValueOf("llama"), ValueString, "llama", `"llama"`},
		{ArrayOf([]string{"<unk>", "<s>", "</s>", "a", "b"}), ValueArray, []string{"<unk>", "<s>", "</s>", "a", "b"}, `[5]string{"<unk>", "<s>", "</s>", "a", ...}`},
		{ArrayOf([]float32{0.5}), ValueArray, []float32{0.5}, `[1]float32{0.5}`},
		{NestedArray([]Value{ArrayOf([]int8{1, 2})}), ValueArray, []Value{ArrayOf([]int8{1, 2})}, `[1]array{[2]int8{1, 2}}`},
	}
	for _, c := range cases {
		if c.v.Type() != c.typ {
			t.Errorf("%s: Type() = %s, want %s", c.str, c.v.Type(), c.typ)
		}
		if diff := cmp.Diff(c.iface, c.v.Interface()); diff != "" {
			t.Errorf("%s: Interface() (-want +got):\n%s", c.str, diff)
		}
		if got := c.v.String(); got != c.str {
			t.Errorf("String() = %q, want %q", got, c.str)
		}
	}
	// Equal compares encodings, so float bits count: -0 != +0, NaN == the same NaN.
	if ValueOf(float32(0)).Equal(ValueOf(float32(math.Copysign(0, -1)))) {
		t.Error("+0 and -0 compare equal")
	}
	nan := ValueOf(float32(math.NaN()))
	if !nan.Equal(nan) || ValueOf(uint32(1)).Equal(ValueOf(int32(1))) {
		t.Error("Equal: NaN differs from itself, or values of different types compare equal")
	}
	if v := ArrayOf([]int32{1}).Index(5); v.Type() != ValueUint8 || v.Interface() != uint8(0) {
		t.Errorf("Index out of range = %v, want the zero Value", v)
	}
}
