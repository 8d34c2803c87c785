package gguf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// maxDepth bounds array nesting, so that a crafted file cannot recurse without limit.
const maxDepth = 16

var le = binary.LittleEndian

func appendString(b []byte, s string) []byte {
	b = le.AppendUint64(b, uint64(len(s)))
	return append(b, s...)
}

// appendValue appends v's payload (without its type id) in GGUF encoding.
func appendValue(b []byte, v Value, depth int) ([]byte, error) {
	switch v.typ {
	case ValueUint8, ValueInt8, ValueBool:
		return append(b, uint8(v.num)), nil
	case ValueUint16, ValueInt16:
		return le.AppendUint16(b, uint16(v.num)), nil
	case ValueUint32, ValueInt32, ValueFloat32:
		return le.AppendUint32(b, uint32(v.num)), nil
	case ValueUint64, ValueInt64, ValueFloat64:
		return le.AppendUint64(b, v.num), nil
	case ValueString:
		return appendString(b, v.str), nil
	case ValueArray:
		return appendArray(b, v, depth)
	}
	return b, fmt.Errorf("unknown value type %s", v.typ)
}

func appendArray(b []byte, v Value, depth int) ([]byte, error) {
	if depth >= maxDepth {
		return b, fmt.Errorf("arrays nested deeper than %d", maxDepth)
	}
	b = le.AppendUint32(b, uint32(v.elem))
	b = le.AppendUint64(b, uint64(v.Len()))
	switch a := v.arr.(type) {
	case []uint8:
		return append(b, a...), nil
	case []int8:
		for _, x := range a {
			b = append(b, uint8(x))
		}
	case []bool:
		for _, x := range a {
			b = append(b, boolByte(x))
		}
	case []uint16:
		for _, x := range a {
			b = le.AppendUint16(b, x)
		}
	case []int16:
		for _, x := range a {
			b = le.AppendUint16(b, uint16(x))
		}
	case []uint32:
		for _, x := range a {
			b = le.AppendUint32(b, x)
		}
	case []int32:
		for _, x := range a {
			b = le.AppendUint32(b, uint32(x))
		}
	case []float32:
		for _, x := range a {
			b = le.AppendUint32(b, math.Float32bits(x))
		}
	case []uint64:
		for _, x := range a {
			b = le.AppendUint64(b, x)
		}
	case []int64:
		for _, x := range a {
			b = le.AppendUint64(b, uint64(x))
		}
	case []float64:
		for _, x := range a {
			b = le.AppendUint64(b, math.Float64bits(x))
		}
	case []string:
		for _, x := range a {
			b = appendString(b, x)
		}
	case []Value:
		for i, x := range a {
			if x.typ != ValueArray {
				return b, fmt.Errorf("element %d of a nested array is a %s, want array", i, x.typ)
			}
			var err error
			if b, err = appendArray(b, x, depth+1); err != nil {
				return b, fmt.Errorf("element %d: %w", i, err)
			}
		}
	default:
		return b, errors.New("array without elements of a known type")
	}
	return b, nil
}

func boolByte(x bool) byte {
	if x {
		return 1
	}
	return 0
}
