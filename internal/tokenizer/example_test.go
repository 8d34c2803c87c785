package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

func Example() {
	v, err := tokenizer.Train("the cat sat on the mat, the cat sat", 280)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("the cat sat", true, false)
	for _, id := range ids {
		fmt.Printf("%d %q\n", id, tok.Piece(id))
	}
	fmt.Printf("%q\n", tok.Decode(ids[1:]))
	// Output:
	// 1 "<s>"
	// 262 "▁the"
	// 265 "▁cat"
	// 266 "▁sat"
	// "the cat sat"
}

func ExampleTrainBPE() {
	v, err := tokenizer.TrainBPE("the cat sat on the mat, the cat sat", tokenizer.Llama3, 300)
	if err != nil {
		log.Fatal(err)
	}
	tok, err := tokenizer.New(v)
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("<|begin_of_text|>the cat sat", false, true)
	for _, id := range ids {
		fmt.Printf("%d %q\n", id, tok.Piece(id))
	}
	fmt.Printf("%q %s %d merges\n", tok.Decode(ids), v.Pre, len(v.Merges))
	// Output:
	// 268 "<|begin_of_text|>"
	// 258 "the"
	// 261 "Ġcat"
	// 262 "Ġsat"
	// "<|begin_of_text|>the cat sat" llama-bpe 12 merges
}
