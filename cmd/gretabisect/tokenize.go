package main

import (
	"fmt"
	"io"
	"strconv"

	"github.com/gretabisect/gretabisect/internal/gguf"
	"github.com/gretabisect/gretabisect/internal/model"
	"github.com/gretabisect/gretabisect/internal/tokenizer"
)

func init() {
	register("tokenize", "print the token ids of a text under a model's vocabulary", runTokenize)
}

const tokenizeUsage = `usage: gretabisect tokenize [--model PATH|tiny] [--no-bos] [--no-parse-special] TEXT

Prints the token ids of TEXT on one line, space separated, as llama.cpp's tokenizer gives
them for the model's vocabulary (SentencePiece or byte-level BPE): BOS first (and EOS last)
as the model's metadata asks, unless --no-bos. Like llama.cpp's llama-tokenize, control
token texts written in TEXT, such as <s> or <|begin_of_text|>, become their ids unless
--no-parse-special. PATH may be any GGUF file with a "llama" or "gpt2" vocabulary,
vocabulary-only files included.

flags:
`

func runTokenize(args []string, stdout, stderr io.Writer) int {
	fs := newFlags("tokenize", stderr)
	fs.Usage = func() { fmt.Fprint(stderr, tokenizeUsage); fs.PrintDefaults() }
	spec := modelFlag(fs)
	noBOS := fs.Bool("no-bos", false, "add no BOS/EOS tokens")
	noParseSpecial := fs.Bool("no-parse-special", false, "read control token texts such as <s> in TEXT as plain text")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return fail(stderr, "tokenize", fmt.Errorf("want exactly one TEXT argument (quote it), got %d", fs.NArg()))
	}
	tok, err := loadTokenizer(*spec)
	if err != nil {
		return fail(stderr, "tokenize", err)
	}
	ids := tok.Encode(fs.Arg(0), !*noBOS, !*noParseSpecial)
	line := make([]byte, 0, 6*len(ids)+1)
	for i, id := range ids {
		if i > 0 {
			line = append(line, ' ')
		}
		line = strconv.AppendInt(line, int64(id), 10)
	}
	if _, err := stdout.Write(append(line, '\n')); err != nil {
		return fail(stderr, "tokenize", err)
	}
	return exitOK
}

// loadTokenizer returns the tokenizer of a --model value: an embedded model's for its spec,
// else the vocabulary of the GGUF file at that path. Only the vocabulary is read from a
// file, so vocabulary-only files work and a model's tensors are neither read nor checked.
func loadTokenizer(spec string) (*tokenizer.Tokenizer, error) {
	if model.IsEmbedded(spec) {
		m, err := model.Inspect(spec)
		if err != nil {
			return nil, err
		}
		defer m.Close()
		return m.Tokenizer, nil
	}
	f, err := gguf.Open(spec)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	tok, err := tokenizer.FromGGUF(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", spec, err)
	}
	return tok, nil
}
