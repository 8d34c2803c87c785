package gguf

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

// allValues holds one pair of every value type, nested arrays included.
func allValues() []KV {
	return []KV{
		{"u8", ValueOf(uint8(200))},
		{"i8", ValueOf(int8(-100))},
		{"u16", ValueOf(uint16(60000))},
		{"i16", ValueOf(int16(-30000))},
		{"u32", ValueOf(uint32(4000000000))},
		{"i32", ValueOf(int32(-2000000000))},
		{"f32", ValueOf(float32(1.5))},
		{"bool", ValueOf(true)},
		{"str", ValueOf("héllo")},
		{"u64", ValueOf(uint64(1) << 63)},
		{"i64", ValueOf(int64(-1) << 62)},
		{"f64", ValueOf(math.Pi)},
		{"a.u8", ArrayOf([]uint8{1, 2, 255})},
		{"a.i8", ArrayOf([]int8{-1, 2})},
		{"a.u16", ArrayOf([]uint16{65535})},
		{"a.i16", ArrayOf([]int16{-2, 3})},
		{"a.u32", ArrayOf([]uint32{7, 8})},
		{"a.i32", ArrayOf([]int32{-7, 8})},
		{"a.f32", ArrayOf([]float32{0.25, -1e-30, float32(math.Inf(1))})},
		{"a.bool", ArrayOf([]bool{true, false})},
		{"a.str", ArrayOf([]string{"", "a", "<0x0A>"})},
		{"a.u64", ArrayOf([]uint64{math.MaxUint64})},
		{"a.i64", ArrayOf([]int64{math.MinInt64})},
		{"a.f64", ArrayOf([]float64{-0.0, 2.5})},
		{"a.empty", ArrayOf([]int32{})},
		{"a.nested", NestedArray([]Value{ArrayOf([]string{"x"}), NestedArray([]Value{ArrayOf([]float32{1})}), ArrayOf([]uint8{})})},
	}
}

type tensorSpec struct {
	name string
	typ  Type
	dims []uint64
}

// buildFile writes a file with every value type and the given tensors, whose bytes are
// filled with a pattern derived from the tensor index.
func buildFile(t testing.TB, kvs []KV, tensors []tensorSpec) []byte {
	t.Helper()
	w := NewWriter()
	for _, kv := range kvs {
		if err := w.AddKV(kv.Key, kv.Value); err != nil {
			t.Fatal(err)
		}
	}
	for i, ts := range tensors {
		n := uint64(1)
		for _, d := range ts.dims {
			n *= d
		}
		size, err := ts.typ.RowBytes(n)
		if err != nil {
			t.Fatal(err)
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*31 + j)
		}
		if err := w.AddTensor(ts.name, ts.typ, ts.dims, data); err != nil {
			t.Fatal(err)
		}
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

var someTensors = []tensorSpec{
	{"token_embd.weight", F32, []uint64{8, 3}},
	{"blk.0.attn_q.weight", Q8_0, []uint64{64, 2}},
	{"blk.0.ffn_down.weight", Q4_K, []uint64{256, 1, 1, 2}},
	{"output_norm.weight", F16, []uint64{5}},
}

func TestRoundTrip(t *testing.T) {
	img := buildFile(t, allValues(), someTensors)
	f, err := Parse(img)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(allValues(), f.KVs); diff != "" {
		t.Errorf("KVs (-want +got):\n%s", diff)
	}
	var got []tensorSpec
	for _, ti := range f.Tensors {
		got = append(got, tensorSpec{ti.Name, ti.Type, ti.Dims})
		if ti.Offset%f.Alignment != 0 {
			t.Errorf("tensor %q: offset %d not aligned", ti.Name, ti.Offset)
		}
	}
	if diff := cmp.Diff(someTensors, got, cmp.AllowUnexported(tensorSpec{})); diff != "" {
		t.Errorf("tensors (-want +got):\n%s", diff)
	}
	for i := range f.Tensors {
		data := f.TensorData(&f.Tensors[i])
		for j, b := range data {
			if b != byte(i*31+j) {
				t.Fatalf("tensor %q byte %d = %d, want %d", f.Tensors[i].Name, j, b, byte(i*31+j))
			}
		}
	}
	if f.DataOffset%DefaultAlignment != 0 {
		t.Errorf("DataOffset %d not aligned", f.DataOffset)
	}
	// Re-writing the parsed file gives the same bytes.
	w, err := FromFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var again bytes.Buffer
	if err := w.Write(&again); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(img, again.Bytes()) {
		t.Errorf("re-written file differs: %d bytes, want %d", again.Len(), len(img))
	}
}

func TestGetters(t *testing.T) {
	f, err := Parse(buildFile(t, allValues(), nil))
	if err != nil {
		t.Fatal(err)
	}
	check := func(name string, got, want any, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", name, diff)
		}
	}
	s, err := f.String("str")
	check(`String("str")`, s, "héllo", err)
	u, err := f.Uint("u32")
	check(`Uint("u32")`, u, uint64(4000000000), err)
	u, err = f.Uint("u8")
	check(`Uint("u8")`, u, uint64(200), err)
	i, err := f.Int("i16")
	check(`Int("i16")`, i, int64(-30000), err)
	i, err = f.Int("u32")
	check(`Int("u32")`, i, int64(4000000000), err)
	fl, err := f.Float("f32")
	check(`Float("f32")`, fl, 1.5, err)
	fl, err = f.Float("i8")
	check(`Float("i8")`, fl, -100.0, err)
	b, err := f.Bool("bool")
	check(`Bool("bool")`, b, true, err)
	ss, err := f.Strings("a.str")
	check(`Strings("a.str")`, ss, []string{"", "a", "<0x0A>"}, err)
	fs, err := f.Float32s("a.f32")
	check(`Float32s("a.f32")`, fs, []float32{0.25, -1e-30, float32(math.Inf(1))}, err)
	is, err := f.Int32s("a.i32")
	check(`Int32s("a.i32")`, is, []int32{-7, 8}, err)
	is, err = f.Int32s("a.u16")
	check(`Int32s("a.u16")`, is, []int32{65535}, err)
	is, err = f.Int32s("a.empty")
	check(`Int32s("a.empty")`, is, []int32{}, err)

	wrong := []struct {
		name string
		call func() error
		want string
	}{
		{"missing", func() error { _, err := f.String("nope"); return err }, `gguf: key "nope": not found`},
		{"string of uint32", func() error { _, err := f.String("u32"); return err }, `gguf: key "u32": value of type uint32, want string`},
		{"uint of negative", func() error { _, err := f.Uint("i8"); return err }, `gguf: key "i8": value -100 of type int8 is negative`},
		{"int of huge uint64", func() error { _, err := f.Int("u64"); return err }, `gguf: key "u64": value 9223372036854775808 of type uint64 overflows int64`},
		{"float of string", func() error { _, err := f.Float("str"); return err }, `gguf: key "str": value of type string, want number`},
		{"bool of uint8", func() error { _, err := f.Bool("u8"); return err }, `gguf: key "u8": value of type uint8, want bool`},
		{"strings of int32s", func() error { _, err := f.Strings("a.i32"); return err }, `gguf: key "a.i32": value of type array of int32, want array of string`},
		{"float32s of float64s", func() error { _, err := f.Float32s("a.f64"); return err }, `want array of float32`},
		{"int32s of uint64 overflow", func() error { _, err := f.Int32s("a.u64"); return err }, `gguf: key "a.u64": element 0 (18446744073709551615) out of int32 range`},
		{"int32s of bools", func() error { _, err := f.Int32s("a.bool"); return err }, `value of type array of bool, want array of integers`},
	}
	for _, tc := range wrong {
		err := tc.call()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	if _, err := f.Uint("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing key: error %v, want ErrNotFound", err)
	}
}

func TestOpenAndFloat32(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	w := NewWriter()
	want := []float32{1, -2.5, 3e-8, float32(math.Inf(-1)), 0, 7}
	raw := make([]byte, 4*len(want))
	if err := Quantize(F32, want, raw); err != nil {
		t.Fatal(err)
	}
	if err := w.AddKV("general.architecture", ValueOf("llama")); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensorFunc("w", F32, []uint64{3, 2}, func(out io.Writer) error {
		_, err := out.Write(raw)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ti, ok := f.Tensor("w")
	if !ok {
		t.Fatal(`Tensor("w") not found`)
	}
	got, err := f.Float32(ti)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Float32 (-want +got):\n%s", diff)
	}
	if &got[0] != &unsafeFloats(f.TensorData(ti))[0] {
		t.Errorf("Float32 of an aligned F32 tensor copied the data")
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil || len(entries) != 1 {
		t.Errorf("WriteFile left %d entries in its folder (%v), want only the file", len(entries), err)
	}
}

func TestDigests(t *testing.T) {
	build := func(tokens []string, arch string) *File {
		w := NewWriter()
		w.AddKV("general.architecture", ValueOf(arch))
		w.AddKV("tokenizer.ggml.model", ValueOf("llama"))
		w.AddKV("tokenizer.ggml.tokens", ArrayOf(tokens))
		var b bytes.Buffer
		if err := w.Write(&b); err != nil {
			t.Fatal(err)
		}
		f, err := Parse(b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	a, b, c := build([]string{"a", "b"}, "llama"), build([]string{"a", "b"}, "qwen2"), build([]string{"a", "c"}, "llama")
	da, _ := a.KVDigest("tokenizer.")
	db, _ := b.KVDigest("tokenizer.")
	dc, _ := c.KVDigest("tokenizer.")
	if da != db || da == dc || len(da) != 64 {
		t.Errorf("tokenizer digests: same vocabulary %s %s, other vocabulary %s", da, db, dc)
	}
	if a.SHA256() == b.SHA256() || a.SHA256() != build([]string{"a", "b"}, "llama").SHA256() {
		t.Error("file SHA-256 does not follow the bytes")
	}
}
