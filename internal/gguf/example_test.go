package gguf_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

// A model file is written with a Writer, opened (memory-mapped) and read back.
func Example() {
	dir, err := os.MkdirTemp("", "gguf-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "tiny.gguf")

	w := gguf.NewWriter()
	must(w.AddKV("general.architecture", gguf.ValueOf("llama")))
	must(w.AddKV("llama.block_count", gguf.ValueOf(uint32(2))))
	must(w.AddKV("tokenizer.ggml.tokens", gguf.ArrayOf([]string{"<unk>", "<s>", "</s>"})))
	row := make([]float32, 32)
	for i := range row {
		row[i] = float32(i-16) / 4
	}
	q := make([]byte, 34) // one Q8_0 block
	must(gguf.QuantizeQ8_0(row, q))
	must(w.AddTensor("blk.0.attn_q.weight", gguf.Q8_0, []uint64{32, 1}, q))
	must(w.WriteFile(path))

	f, err := gguf.Open(path)
	if err != nil {
		log.Fatal(err)
	}
	defer f.Close()
	arch, _ := f.String("general.architecture")
	layers, _ := f.Uint("llama.block_count")
	tokens, _ := f.Strings("tokenizer.ggml.tokens")
	t, _ := f.Tensor("blk.0.attn_q.weight")
	x, err := f.Float32(t)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(arch, layers, len(tokens), t.Type, t.Dims)
	fmt.Printf("%.3f %.3f %.3f\n", x[0], x[16], x[31])
	_, err = f.Int32s("general.architecture")
	fmt.Println(err)
	// Output:
	// llama 2 3 Q8_0 [32 1]
	// -4.000 0.000 3.748
	// gguf: key "general.architecture": value of type string, want array of integers
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
