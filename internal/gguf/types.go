package gguf

import "fmt"

// Type is a ggml tensor element type id, as stored in a GGUF tensor info.
type Type uint32

// The ggml type ids. Ids 4, 5 and 31-33, 36-38 were retired by ggml and are refused.
const (
	F32     Type = 0
	F16     Type = 1
	Q4_0    Type = 2
	Q4_1    Type = 3
	Q5_0    Type = 6
	Q5_1    Type = 7
	Q8_0    Type = 8
	Q8_1    Type = 9
	Q2_K    Type = 10
	Q3_K    Type = 11
	Q4_K    Type = 12
	Q5_K    Type = 13
	Q6_K    Type = 14
	Q8_K    Type = 15
	IQ2_XXS Type = 16
	IQ2_XS  Type = 17
	IQ3_XXS Type = 18
	IQ1_S   Type = 19
	IQ4_NL  Type = 20
	IQ3_S   Type = 21
	IQ2_S   Type = 22
	IQ4_XS  Type = 23
	I8      Type = 24
	I16     Type = 25
	I32     Type = 26
	I64     Type = 27
	F64     Type = 28
	IQ1_M   Type = 29
	BF16    Type = 30
	TQ1_0   Type = 34
	TQ2_0   Type = 35
	MXFP4   Type = 39
	NVFP4   Type = 40
	Q1_0    Type = 41
	Q2_0    Type = 42
)

// typeInfo is a ggml type's block layout: block elements are stored in size bytes.
type typeInfo struct {
	name  string
	block uint64
	size  uint64
}

// qk is the super-block length of the k-quants and most i-quants.
const qk = 256

var typeInfos = [...]typeInfo{
	F32:     {"F32", 1, 4},
	F16:     {"F16", 1, 2},
	Q4_0:    {"Q4_0", 32, 2 + 16},
	Q4_1:    {"Q4_1", 32, 2 + 2 + 16},
	Q5_0:    {"Q5_0", 32, 2 + 4 + 16},
	Q5_1:    {"Q5_1", 32, 2 + 2 + 4 + 16},
	Q8_0:    {"Q8_0", 32, 2 + 32},
	Q8_1:    {"Q8_1", 32, 2 + 2 + 32},
	Q2_K:    {"Q2_K", qk, qk/16 + qk/4 + 2 + 2},
	Q3_K:    {"Q3_K", qk, qk/8 + qk/4 + 12 + 2},
	Q4_K:    {"Q4_K", qk, 2 + 2 + 12 + qk/2},
	Q5_K:    {"Q5_K", qk, 2 + 2 + 12 + qk/8 + qk/2},
	Q6_K:    {"Q6_K", qk, qk/2 + qk/4 + qk/16 + 2},
	Q8_K:    {"Q8_K", qk, 4 + qk + qk/16*2},
	IQ2_XXS: {"IQ2_XXS", qk, 2 + qk/8*2},
	IQ2_XS:  {"IQ2_XS", qk, 2 + qk/8*2 + qk/32},
	IQ3_XXS: {"IQ3_XXS", qk, 2 + 3*qk/8},
	IQ1_S:   {"IQ1_S", qk, 2 + qk/8 + qk/16},
	IQ4_NL:  {"IQ4_NL", 32, 2 + 16},
	IQ3_S:   {"IQ3_S", qk, 2 + qk/4 + qk/32 + qk/8 + qk/64},
	IQ2_S:   {"IQ2_S", qk, 2 + qk/4 + qk/32 + qk/32},
	IQ4_XS:  {"IQ4_XS", qk, 2 + 2 + qk/64 + qk/2},
	I8:      {"I8", 1, 1},
	I16:     {"I16", 1, 2},
	I32:     {"I32", 1, 4},
	I64:     {"I64", 1, 8},
	F64:     {"F64", 1, 8},
	IQ1_M:   {"IQ1_M", qk, qk/8 + qk/16 + qk/32},
	BF16:    {"BF16", 1, 2},
	TQ1_0:   {"TQ1_0", qk, (qk-4*qk/64)/5 + qk/64 + 2},
	TQ2_0:   {"TQ2_0", qk, qk/4 + 2},
	MXFP4:   {"MXFP4", 32, 1 + 16},
	NVFP4:   {"NVFP4", 64, 4 + 32},
	Q1_0:    {"Q1_0", 128, 2 + 16},
	Q2_0:    {"Q2_0", 64, 2 + 16},
}

func (t Type) info() (typeInfo, bool) {
	if int(t) >= len(typeInfos) || typeInfos[t].block == 0 {
		return typeInfo{}, false
	}
	return typeInfos[t], true
}

// Known reports whether t is a ggml type id this package can size.
func (t Type) Known() bool {
	_, ok := t.info()
	return ok
}

// String returns ggml's name for t ("Q4_K"), or "type(N)" for an unknown id.
func (t Type) String() string {
	if ti, ok := t.info(); ok {
		return ti.name
	}
	return fmt.Sprintf("type(%d)", uint32(t))
}

// BlockSize returns the number of elements in one block of t (1 for plain types, 0 if t is
// unknown).
func (t Type) BlockSize() uint64 {
	ti, _ := t.info()
	return ti.block
}

// TypeSize returns the bytes of one block of t (0 if t is unknown).
func (t Type) TypeSize() uint64 {
	ti, _ := t.info()
	return ti.size
}

// RowBytes returns the bytes that n elements of type t occupy. n must be a multiple of the
// block size.
func (t Type) RowBytes(n uint64) (uint64, error) {
	ti, ok := t.info()
	if !ok {
		return 0, fmt.Errorf("gguf: unknown ggml type %s", t)
	}
	if n%ti.block != 0 {
		return 0, fmt.Errorf("gguf: %d elements of %s: not a multiple of the block size %d", n, t, ti.block)
	}
	hi, lo := mul64(n/ti.block, ti.size)
	if hi {
		return 0, fmt.Errorf("gguf: %d elements of %s: byte size overflows", n, t)
	}
	return lo, nil
}

// ValueType is the type id of a GGUF metadata value.
type ValueType uint32

// The metadata value types.
const (
	ValueUint8   ValueType = 0
	ValueInt8    ValueType = 1
	ValueUint16  ValueType = 2
	ValueInt16   ValueType = 3
	ValueUint32  ValueType = 4
	ValueInt32   ValueType = 5
	ValueFloat32 ValueType = 6
	ValueBool    ValueType = 7
	ValueString  ValueType = 8
	ValueArray   ValueType = 9
	ValueUint64  ValueType = 10
	ValueInt64   ValueType = 11
	ValueFloat64 ValueType = 12
)

var valueTypeNames = [...]string{
	ValueUint8: "uint8", ValueInt8: "int8", ValueUint16: "uint16", ValueInt16: "int16",
	ValueUint32: "uint32", ValueInt32: "int32", ValueFloat32: "float32", ValueBool: "bool",
	ValueString: "string", ValueArray: "array", ValueUint64: "uint64", ValueInt64: "int64",
	ValueFloat64: "float64",
}

// valueSizes holds the encoded size of fixed-size value types (0 for string and array).
var valueSizes = [...]uint64{
	ValueUint8: 1, ValueInt8: 1, ValueUint16: 2, ValueInt16: 2, ValueUint32: 4, ValueInt32: 4,
	ValueFloat32: 4, ValueBool: 1, ValueUint64: 8, ValueInt64: 8, ValueFloat64: 8,
}

// Known reports whether v is a defined value type.
func (v ValueType) Known() bool { return int(v) < len(valueTypeNames) }

// String returns the GGUF name of v ("uint32"), or "value_type(N)" if unknown.
func (v ValueType) String() string {
	if v.Known() {
		return valueTypeNames[v]
	}
	return fmt.Sprintf("value_type(%d)", uint32(v))
}

// minSize is the fewest bytes a value of type v can be encoded in: it bounds counts before
// anything is allocated.
func (v ValueType) minSize() uint64 {
	switch v {
	case ValueString:
		return 8 // length
	case ValueArray:
		return 4 + 8 // element type, count
	}
	return valueSizes[v]
}
