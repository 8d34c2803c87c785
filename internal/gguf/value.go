package gguf

import (
	"bytes"
	"fmt"
	"math"
	"math/bits"
)

// Value is a typed GGUF metadata value. Arrays keep their element type; an array of arrays
// holds a []Value whose elements are arrays themselves (each with its own element type).
// The zero Value is a uint8 0.
type Value struct {
	typ  ValueType
	elem ValueType // element type of an array
	num  uint64    // scalar numbers and bools: the value's bits, zero-extended
	str  string
	arr  any // []uint8 ... []float64, []bool, []string, or []Value for nested arrays
}

// Scalar is the set of Go types that map to a GGUF scalar value type.
type Scalar interface {
	uint8 | int8 | uint16 | int16 | uint32 | int32 | float32 | bool | string | uint64 | int64 | float64
}

// ValueOf returns the GGUF value of v; its type follows v's Go type (uint32 -> uint32).
func ValueOf[T Scalar](v T) Value {
	switch x := any(v).(type) {
	case uint8:
		return Value{typ: ValueUint8, num: uint64(x)}
	case int8:
		return Value{typ: ValueInt8, num: uint64(uint8(x))}
	case uint16:
		return Value{typ: ValueUint16, num: uint64(x)}
	case int16:
		return Value{typ: ValueInt16, num: uint64(uint16(x))}
	case uint32:
		return Value{typ: ValueUint32, num: uint64(x)}
	case int32:
		return Value{typ: ValueInt32, num: uint64(uint32(x))}
	case float32:
		return Value{typ: ValueFloat32, num: uint64(math.Float32bits(x))}
	case bool:
		if x {
			return Value{typ: ValueBool, num: 1}
		}
		return Value{typ: ValueBool}
	case string:
		return Value{typ: ValueString, str: x}
	case uint64:
		return Value{typ: ValueUint64, num: x}
	case int64:
		return Value{typ: ValueInt64, num: uint64(x)}
	default: // float64: the constraint admits nothing else
		return Value{typ: ValueFloat64, num: math.Float64bits(any(v).(float64))}
	}
}

// ArrayOf returns a GGUF array of v's elements; the element type follows T. The slice is
// kept, not copied.
func ArrayOf[T Scalar](v []T) Value {
	return Value{typ: ValueArray, elem: ValueOf(*new(T)).typ, arr: v}
}

// NestedArray returns an array whose elements are arrays. Each element must itself be an
// array value (the Writer refuses anything else). The GGUF format allows arrays of arrays
// and Parse reads them, but llama.cpp's reader refuses them ("invalid GGUF type 9"): keep
// them out of files meant for llama.cpp.
func NestedArray(v []Value) Value {
	return Value{typ: ValueArray, elem: ValueArray, arr: v}
}

// Type returns the value's type.
func (v Value) Type() ValueType { return v.typ }

// ElemType returns an array's element type.
func (v Value) ElemType() ValueType { return v.elem }

// Len returns the number of elements of an array, 0 for a scalar.
func (v Value) Len() int {
	switch a := v.arr.(type) {
	case nil:
		return 0
	case []Value:
		return len(a)
	case []string:
		return len(a)
	case []bool:
		return len(a)
	case []uint8:
		return len(a)
	case []int8:
		return len(a)
	case []uint16:
		return len(a)
	case []int16:
		return len(a)
	case []uint32:
		return len(a)
	case []int32:
		return len(a)
	case []float32:
		return len(a)
	case []uint64:
		return len(a)
	case []int64:
		return len(a)
	case []float64:
		return len(a)
	}
	return 0
}

// Interface returns the value as a Go value: the scalar's Go type (uint8 ... float64, bool,
// string), or for an array its slice ([]uint32, []string, []Value for nested arrays).
func (v Value) Interface() any {
	switch v.typ {
	case ValueUint8:
		return uint8(v.num)
	case ValueInt8:
		return int8(v.num)
	case ValueUint16:
		return uint16(v.num)
	case ValueInt16:
		return int16(v.num)
	case ValueUint32:
		return uint32(v.num)
	case ValueInt32:
		return int32(v.num)
	case ValueFloat32:
		return math.Float32frombits(uint32(v.num))
	case ValueBool:
		return v.num != 0
	case ValueString:
		return v.str
	case ValueUint64:
		return v.num
	case ValueInt64:
		return int64(v.num)
	case ValueFloat64:
		return math.Float64frombits(v.num)
	}
	return v.arr
}

// String formats the value for people: scalars as Go formats them (strings quoted), arrays
// as their element type and length, with the first elements.
func (v Value) String() string {
	switch v.typ {
	case ValueString:
		return fmt.Sprintf("%q", v.str)
	case ValueArray:
		const show = 4
		n := v.Len()
		var b bytes.Buffer
		fmt.Fprintf(&b, "[%d]%s{", n, v.elem)
		for i := range min(n, show) {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString(v.Index(i).String())
		}
		if n > show {
			b.WriteString(", ...")
		}
		b.WriteString("}")
		return b.String()
	}
	return fmt.Sprint(v.Interface())
}

// Index returns element i of an array as a Value (the zero Value if out of range).
func (v Value) Index(i int) Value {
	if i < 0 || i >= v.Len() {
		return Value{}
	}
	switch a := v.arr.(type) {
	case []Value:
		return a[i]
	case []string:
		return ValueOf(a[i])
	case []bool:
		return ValueOf(a[i])
	case []uint8:
		return ValueOf(a[i])
	case []int8:
		return ValueOf(a[i])
	case []uint16:
		return ValueOf(a[i])
	case []int16:
		return ValueOf(a[i])
	case []uint32:
		return ValueOf(a[i])
	case []int32:
		return ValueOf(a[i])
	case []float32:
		return ValueOf(a[i])
	case []uint64:
		return ValueOf(a[i])
	case []int64:
		return ValueOf(a[i])
	case []float64:
		return ValueOf(a[i])
	}
	return Value{}
}

// Equal reports whether v and o have the same type and encode to the same bytes (floats
// compare by bits).
func (v Value) Equal(o Value) bool {
	if v.typ != o.typ {
		return false
	}
	a, errA := appendValue(nil, v, 0)
	b, errB := appendValue(nil, o, 0)
	return errA == nil && errB == nil && bytes.Equal(a, b)
}

func (t ValueType) signedInt() bool {
	return t == ValueInt8 || t == ValueInt16 || t == ValueInt32 || t == ValueInt64
}

func (t ValueType) unsignedInt() bool {
	return t == ValueUint8 || t == ValueUint16 || t == ValueUint32 || t == ValueUint64
}

func (v Value) isSignedInt() bool   { return v.typ.signedInt() }
func (v Value) isUnsignedInt() bool { return v.typ.unsignedInt() }

// signed returns a signed integer's value.
func (v Value) signed() int64 {
	switch v.typ {
	case ValueInt8:
		return int64(int8(v.num))
	case ValueInt16:
		return int64(int16(v.num))
	case ValueInt32:
		return int64(int32(v.num))
	}
	return int64(v.num)
}

func (v Value) describe() string {
	if v.typ == ValueArray {
		return "array of " + v.elem.String()
	}
	return v.typ.String()
}

func wrongType(v Value, want string) error {
	return fmt.Errorf("value of type %s, want %s", v.describe(), want)
}

// AsString returns a string value.
func (v Value) AsString() (string, error) {
	if v.typ != ValueString {
		return "", wrongType(v, "string")
	}
	return v.str, nil
}

// AsBool returns a bool value.
func (v Value) AsBool() (bool, error) {
	if v.typ != ValueBool {
		return false, wrongType(v, "bool")
	}
	return v.num != 0, nil
}

// AsUint returns an unsigned integer, or a signed integer that is not negative.
func (v Value) AsUint() (uint64, error) {
	switch {
	case v.isUnsignedInt():
		return v.num, nil
	case v.isSignedInt():
		if s := v.signed(); s >= 0 {
			return uint64(s), nil
		}
		return 0, fmt.Errorf("value %d of type %s is negative, want unsigned integer", v.signed(), v.typ)
	}
	return 0, wrongType(v, "unsigned integer")
}

// AsInt returns any integer that fits in an int64.
func (v Value) AsInt() (int64, error) {
	switch {
	case v.isSignedInt():
		return v.signed(), nil
	case v.isUnsignedInt():
		if v.num <= math.MaxInt64 {
			return int64(v.num), nil
		}
		return 0, fmt.Errorf("value %d of type %s overflows int64", v.num, v.typ)
	}
	return 0, wrongType(v, "integer")
}

// AsFloat returns a float32 or float64 value, or an integer converted to float64.
func (v Value) AsFloat() (float64, error) {
	switch {
	case v.typ == ValueFloat32:
		return float64(math.Float32frombits(uint32(v.num))), nil
	case v.typ == ValueFloat64:
		return math.Float64frombits(v.num), nil
	case v.isSignedInt():
		return float64(v.signed()), nil
	case v.isUnsignedInt():
		return float64(v.num), nil
	}
	return 0, wrongType(v, "number")
}

// AsStrings returns an array of strings (the array itself, not a copy).
func (v Value) AsStrings() ([]string, error) {
	a, ok := v.arr.([]string)
	if v.typ != ValueArray || !ok {
		return nil, wrongType(v, "array of string")
	}
	return a, nil
}

// AsFloat32s returns an array of float32 (the array itself, not a copy).
func (v Value) AsFloat32s() ([]float32, error) {
	a, ok := v.arr.([]float32)
	if v.typ != ValueArray || !ok {
		return nil, wrongType(v, "array of float32")
	}
	return a, nil
}

// AsInt32s returns an array of any integer type as int32s. An []int32 is returned as is;
// other element types are converted, and an element outside the int32 range is an error.
func (v Value) AsInt32s() ([]int32, error) {
	if v.typ == ValueArray {
		if a, ok := v.arr.([]int32); ok {
			return a, nil
		}
	}
	if v.typ != ValueArray || !(v.elem.signedInt() || v.elem.unsignedInt()) {
		return nil, wrongType(v, "array of integers")
	}
	out := make([]int32, v.Len())
	for i := range out {
		e := v.Index(i)
		n, err := e.AsInt()
		if err != nil || n < math.MinInt32 || n > math.MaxInt32 {
			return nil, fmt.Errorf("element %d (%s) out of int32 range", i, e)
		}
		out[i] = int32(n)
	}
	return out, nil
}

func mul64(a, b uint64) (overflow bool, p uint64) {
	hi, lo := bits.Mul64(a, b)
	return hi != 0, lo
}
