package golden

import (
	"bytes"
	"encoding/binary"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNpyRoundTrip(t *testing.T) {
	tests := []struct {
		shape []int
		data  []float32
	}{
		{nil, []float32{1, -2.5, float32(math.Inf(1)), 0}},
		{[]int{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
		{[]int{0}, []float32{}},
	}
	for _, tc := range tests {
		var b bytes.Buffer
		if err := WriteNpy(&b, tc.shape, tc.data); err != nil {
			t.Fatal(err)
		}
		if b.Len()%64 != len(tc.data)*4%64 {
			t.Errorf("shape %v: data does not start on a 64-byte boundary (file %d bytes)", tc.shape, b.Len())
		}
		shape, data, err := ReadNpy(&b)
		if err != nil {
			t.Fatal(err)
		}
		wantShape := tc.shape
		if wantShape == nil {
			wantShape = []int{len(tc.data)}
		}
		if diff := cmp.Diff(wantShape, shape); diff != "" {
			t.Errorf("shape (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(tc.data, data); diff != "" {
			t.Errorf("data (-want +got):\n%s", diff)
		}
	}
	path := filepath.Join(t.TempDir(), "x.npy")
	if err := WriteNpyFile(path, nil, []float32{7}); err != nil {
		t.Fatal(err)
	}
	if _, data, err := ReadNpyFile(path); err != nil || len(data) != 1 || data[0] != 7 {
		t.Errorf("ReadNpyFile = %v, %v; want [7]", data, err)
	}
}

// npyBytes builds an .npy file by hand, as numpy would write it.
func npyBytes(version byte, header string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("\x93NUMPY")
	b.WriteByte(version)
	b.WriteByte(0)
	if version == 1 {
		binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	} else {
		binary.Write(&b, binary.LittleEndian, uint32(len(header)))
	}
	b.WriteString(header)
	b.Write(payload)
	return b.Bytes()
}

func TestReadNpyDTypes(t *testing.T) {
	var f8 bytes.Buffer
	binary.Write(&f8, binary.LittleEndian, []float64{1.5, -1e300})
	tests := []struct {
		name    string
		file    []byte
		want    []float32
		wantDim []int
	}{
		{"<f2", npyBytes(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (5,), }\n",
			[]byte{0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7c, 0xff, 0x7b}),
			[]float32{1, -2, float32(math.Ldexp(1, -24)), float32(math.Inf(1)), 65504}, []int{5}},
		{"<f8 version 2, double quotes, 2-D", npyBytes(2, `{"shape": (1, 2), "fortran_order": False, "descr": "<f8"}`+"\n", f8.Bytes()),
			[]float32{1.5, float32(math.Inf(-1))}, []int{1, 2}},
		{"scalar", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (), }\n", []byte{0, 0, 0x80, 0x3f}), []float32{1}, []int{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			shape, data, err := ReadNpy(bytes.NewReader(tc.file))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantDim, shape); diff != "" {
				t.Errorf("shape (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadNpyErrors(t *testing.T) {
	hdr := func(s string) []byte { return npyBytes(1, s, nil) }
	tests := []struct {
		name string
		file []byte
		want string
	}{
		{"empty", nil, "reading magic"},
		{"not npy", []byte("PK\x03\x04zipfile"), "bad magic"},
		{"version 9", npyBytes(9, "{}", nil), "unsupported version 9.0"},
		{"big endian", hdr("{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }"), `dtype ">f4"`},
		{"integers", hdr("{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }"), `dtype "<i4"`},
		{"fortran order", hdr("{'descr': '<f4', 'fortran_order': True, 'shape': (1,), }"), "fortran_order True"},
		{"no shape", hdr("{'descr': '<f4', 'fortran_order': False}"), `no "shape"`},
		{"bad dimension", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }"), `bad dimension "-1"`},
		{"huge shape", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (100000, 100000), }"), "too large"},
		{"short data", npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", []byte{1, 2, 3}), "needs 16 data bytes, file has 3"},
		{"not a dict", hdr("['descr']"), "not a dict"},
		{"unknown key", hdr("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'x': 1}"), `unknown key "x"`},
		{"truncated header", []byte("\x93NUMPY\x01\x00\x50\x00{'descr'"), "reading 80-byte header"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadNpy(bytes.NewReader(tc.file))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "npy: ") {
				t.Errorf("ReadNpy error %v, want one starting npy: and containing %q", err, tc.want)
			}
		})
	}
	if err := WriteNpy(&bytes.Buffer{}, []int{2, 2}, []float32{1}); err == nil {
		t.Error("WriteNpy of 1 value with shape [2 2]: no error")
	}
}

// TestHalfToFloat32 checks every binary16 value against the definition: sign, then
// 2^(e-15) * (1 + m/1024) for normal numbers and 2^-14 * m/1024 for subnormal ones.
func TestHalfToFloat32(t *testing.T) {
	for h := 0; h < 1<<16; h++ {
		sign := 1.0
		if h&0x8000 != 0 {
			sign = -1
		}
		e, m := (h>>10)&0x1f, h&0x3ff
		got := halfToFloat32(uint16(h))
		var want float64
		switch {
		case e == 0x1f && m == 0:
			want = math.Inf(int(sign))
		case e == 0x1f:
			if !math.IsNaN(float64(got)) {
				t.Fatalf("half %#04x = %v, want NaN", h, got)
			}
			continue
		case e == 0:
			want = sign * math.Ldexp(float64(m)/1024, -14)
		default:
			want = sign * math.Ldexp(1+float64(m)/1024, e-15)
		}
		if float64(got) != want || math.Signbit(float64(got)) != (sign < 0) {
			t.Fatalf("half %#04x = %v, want %v", h, got, want)
		}
	}
}

// FuzzReadNpy: arbitrary bytes give values or an error, never a panic or a huge allocation.
func FuzzReadNpy(f *testing.F) {
	var b bytes.Buffer
	WriteNpy(&b, []int{2, 2}, []float32{1, 2, 3, 4})
	f.Add(b.Bytes())
	f.Add(npyBytes(1, "{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }\n", []byte{0, 0x3c, 0, 0, 0xff, 0x7f}))
	f.Add(npyBytes(3, `{"descr":"<f8","fortran_order":False,"shape":(1,)}`, make([]byte, 8)))
	f.Fuzz(func(t *testing.T, data []byte) {
		shape, vals, err := ReadNpy(bytes.NewReader(data))
		if err != nil {
			return
		}
		count := 1
		for _, d := range shape {
			count *= d
		}
		if count != len(vals) {
			t.Fatalf("shape %v but %d values", shape, len(vals))
		}
	})
}
