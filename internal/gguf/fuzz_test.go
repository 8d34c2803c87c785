package gguf

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/testutil"
)

// fuzzSeeds are the committed corpus of FuzzParse (testdata/fuzz/FuzzParse): small valid
// files that reach every section and every supported tensor type.
func fuzzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	seeds := map[string][]byte{"base": baseImage().b}
	seeds["values"] = buildFile(t, allValues(), nil)
	var tensors []tensorSpec
	for _, typ := range []Type{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K} {
		tensors = append(tensors, tensorSpec{"t." + typ.String(), typ, []uint64{typ.BlockSize() * 2, 1}})
	}
	seeds["types"] = buildFile(t, []KV{{KeyAlignment, ValueOf(uint32(64))}}, tensors)
	w := NewWriter()
	if err := w.SetVersion(2); err != nil {
		t.Fatal(err)
	}
	if err := w.AddKV("general.name", ValueOf("v2")); err != nil {
		t.Fatal(err)
	}
	if err := w.AddTensor("x", F32, []uint64{1, 1, 1, 2}, make([]byte, 8)); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatal(err)
	}
	seeds["v2"] = buf.Bytes()
	return seeds
}

func corpusFile(data []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%s)\n", strconv.Quote(string(data)))
}

// TestFuzzCorpus keeps the committed seeds equal to fuzzSeeds; -update rewrites them.
func TestFuzzCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzParse")
	for name, data := range fuzzSeeds(t) {
		path := filepath.Join(dir, name)
		want := corpusFile(data)
		if testutil.Update() {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, want, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("fuzz seed %s is missing or stale (%v): run go test ./internal/gguf -run TestFuzzCorpus -update", path, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, data := range fuzzSeeds(f) {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Parse(data)
		if err != nil {
			if _, ok := errors.AsType[*FormatError](err); !ok {
				t.Fatalf("error %v (%T) is not a *FormatError", err, err)
			}
			return
		}
		checkParsed(t, file)
	})
}

// checkParsed asserts what Parse promises of an accepted file: every tensor's data lies in
// the file, supported types dequantize, and writing the file again and parsing that gives
// the same metadata and tensors.
func checkParsed(t *testing.T, f *File) {
	t.Helper()
	w, err := FromFile(f)
	if err != nil {
		t.Fatalf("FromFile of a parsed file: %v", err)
	}
	for i := range f.Tensors {
		ti := &f.Tensors[i]
		data := f.TensorData(ti)
		if uint64(len(data)) != ti.Size || ti.Offset%f.Alignment != 0 {
			t.Fatalf("tensor %q: %d bytes at offset %d, want %d aligned to %d", ti.Name, len(data), ti.Offset, ti.Size, f.Alignment)
		}
		if ti.Type.Supported() && ti.NumElements() <= 1<<16 {
			if _, err := f.Float32(ti); err != nil {
				t.Fatalf("tensor %q: %v", ti.Name, err)
			}
		}
	}
	var buf bytes.Buffer
	if err := w.Write(&buf); err != nil {
		t.Fatalf("re-writing a parsed file: %v", err)
	}
	g, err := Parse(buf.Bytes())
	if err != nil {
		t.Fatalf("parsing a re-written file: %v", err)
	}
	if diff := cmp.Diff(f.KVs, g.KVs); diff != "" {
		t.Fatalf("KVs changed by a re-write (-before +after):\n%s", diff)
	}
	if len(f.Tensors) != len(g.Tensors) {
		t.Fatalf("%d tensors after a re-write, want %d", len(g.Tensors), len(f.Tensors))
	}
	for i := range f.Tensors {
		a, b := f.Tensors[i], g.Tensors[i]
		if a.Name != b.Name || a.Type != b.Type || a.Size != b.Size || !cmp.Equal(a.Dims, b.Dims) ||
			!bytes.Equal(f.TensorData(&a), g.TensorData(&b)) {
			t.Fatalf("tensor %d changed by a re-write: %+v -> %+v", i, a, b)
		}
	}
}
