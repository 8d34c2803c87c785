package tokenizer

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/gretabisect/gretabisect/internal/gguf"
)

func TestByteLevelTables(t *testing.T) {
	for _, c := range []struct {
		b    byte
		char string
	}{{'!', "!"}, {'~', "~"}, {0xA1, "¡"}, {0xFF, "ÿ"}, {0, "Ā"}, {' ', "Ġ"}, {'\n', "Ċ"}, {0x7F, "ġ"}, {0xAD, "Ń"}} {
		if got := byteChars[c.b]; got != c.char {
			t.Errorf("byteChars[0x%02X] = %q, want %q", c.b, got, c.char)
		}
	}
	seen := map[string]bool{}
	for b := range 256 {
		if seen[byteChars[b]] {
			t.Errorf("byteChars[0x%02X] = %q twice", b, byteChars[b])
		}
		seen[byteChars[b]] = true
		if got := decodeByteLevel(byteChars[b]); got != string([]byte{byte(b)}) {
			t.Errorf("decodeByteLevel(%q) = %q, want byte 0x%02X", byteChars[b], got, b)
		}
	}
	// GPT-2's first 256 ids are the byte characters in byteOrder.
	path := filepath.Join(vocabDir, "ggml-vocab-gpt-2.gguf")
	if _, err := os.Stat(path); err != nil {
		return
	}
	tok, err := openTokenizer(path)
	if err != nil {
		t.Fatal(err)
	}
	for i, b := range byteOrder {
		if got := tok.Piece(int32(i)); got != byteChars[b] {
			t.Errorf("GPT-2 token %d = %q, want %q (byte 0x%02X)", i, got, byteChars[b], b)
		}
	}
}

// bpeVocab builds a byte-level vocabulary: the 256 byte characters (id = position in
// byteOrder), then the merged pieces of merges in order, then extra tokens.
func bpeVocab(pre string, merges []string, extra ...piece) Vocab {
	v := Vocab{Model: ModelGPT2, Pre: pre, BOS: -1, EOS: -1, UNK: -1, Merges: merges}
	add := func(text string, typ int32) {
		if !slices.Contains(v.Tokens, text) {
			v.Tokens = append(v.Tokens, text)
			v.Types = append(v.Types, typ)
		}
	}
	for _, b := range byteOrder {
		add(byteChars[b], TypeNormal)
	}
	for _, m := range merges {
		add(strings.Replace(m, " ", "", 1), TypeNormal)
	}
	for _, p := range extra {
		add(p.text, p.typ)
	}
	return v
}

func TestEncodeBPESmall(t *testing.T) {
	merges := []string{"h e", "Ġ t", "Ġt he", "t he", "l l", "e ll", "he ll", "o o"}
	tests := []struct {
		reason  string
		pre     string
		merges  []string // nil: merges
		extra   []piece
		text    string
		special bool
		want    []string
	}{
		{"merges by rank within words", "gpt-2", nil, nil, "the the", false, []string{"the", "Ġthe"}},
		{"a chain of merges: he, ll, then hell", "gpt-2", nil, nil, "hell", false, []string{"hell"}},
		{"the lower rank first: (h,e) before (e,ll)", "gpt-2", []string{"h e", "l l", "e ll"}, nil, "hell", false, []string{"he", "ll"}},
		{"ties go to the leftmost pair", "gpt-2", nil, nil, "ooo", false, []string{"oo", "o"}},
		{"no merge across words", "gpt-2", nil, nil, "h e", false, []string{"h", "Ġ", "e"}},
		{"bytes of a multi-byte character", "gpt-2", nil, nil, "é", false, []string{"Ã", "©"}},
		{"Llama 3 takes a word that is a token whole", "llama-bpe", nil, []piece{{"hello", 0, TypeNormal}}, "hello", false,
			[]string{"hello"}},
		{"other pre-tokenizers merge it", "qwen2", nil, []piece{{"hello", 0, TypeNormal}}, "hello", false,
			[]string{"hell", "o"}},
		{"user-defined tokens are cut out without parseSpecial", "gpt-2", nil, []piece{{"<u d>", 0, TypeUserDefined}}, "the<u d>the", false,
			[]string{"the", "<u d>", "the"}},
		{"control tokens are text without parseSpecial", "gpt-2", nil, []piece{{"<|c|>", 0, TypeControl}}, "<|c|>", false,
			[]string{"<|", "c", "|>"}},
		{"control tokens with parseSpecial, no space prefix after them", "gpt-2", nil, []piece{{"<|c|>", 0, TypeControl}}, "<|c|>the", true,
			[]string{"<|c|>", "the"}},
	}
	for _, tt := range tests {
		m := merges
		if tt.merges != nil {
			m = tt.merges
		}
		for _, p := range tt.extra {
			if p.text == "<|c|>" {
				m = append(slices.Clone(m), "< |", "| >")
			}
		}
		v := bpeVocab(tt.pre, m, tt.extra...)
		tok := mustNew(t, v)
		got := pieceTexts(tok, tok.Encode(tt.text, false, tt.special))
		if diff := cmp.Diff(tt.want, got); diff != "" {
			t.Errorf("%s: Encode(%q) (-want +got):\n%s", tt.reason, tt.text, diff)
		}
		if back := tok.Decode(tok.Encode(tt.text, false, tt.special)); back != tt.text {
			t.Errorf("%s: Decode(Encode(%q)) = %q", tt.reason, tt.text, back)
		}
	}
}

func TestEncodeBPESpecialFlags(t *testing.T) {
	v := bpeVocab("gpt-2", nil, piece{"<s>", 0, TypeControl}, piece{"</s>", 0, TypeControl})
	v.BOS, v.EOS = 256, 257
	for _, c := range []struct {
		addBOS, addEOS bool
		want           []int32
	}{{false, false, []int32{0}}, {true, false, []int32{256, 0}}, {true, true, []int32{256, 0, 257}}} {
		v.AddBOS, v.AddEOS = c.addBOS, c.addEOS
		tok := mustNew(t, v)
		if diff := cmp.Diff(c.want, tok.Encode("!", true, false)); diff != "" {
			t.Errorf("AddBOS %v AddEOS %v: (-want +got):\n%s", c.addBOS, c.addEOS, diff)
		}
		if diff := cmp.Diff([]int32{0}, tok.Encode("!", false, false)); diff != "" {
			t.Errorf("without addSpecial: (-want +got):\n%s", diff)
		}
	}
}

// naiveBPE is the definition of byte-level BPE on one word, quadratic and obviously right:
// merge the adjacent pair of lowest rank (then the leftmost) until no pair is listed.
func naiveBPE(ranks map[[2]string]int, word string) []string {
	var syms []string
	for _, r := range word {
		syms = append(syms, string(r))
	}
	for {
		best, bestRank := -1, 0
		for i := 0; i+1 < len(syms); i++ {
			if r, ok := ranks[[2]string{syms[i], syms[i+1]}]; ok && (best < 0 || r < bestRank) {
				best, bestRank = i, r
			}
		}
		if best < 0 {
			return syms
		}
		syms = slices.Replace(syms, best, best+2, syms[best]+syms[best+1])
	}
}

// TestEncodeBPEMatchesNaive compares the heap-based merge loop with naiveBPE on random merge
// lists over a small alphabet.
func TestEncodeBPEMatchesNaive(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "b", "c"}
	for round := range 200 {
		pieces := slices.Clone(alphabet)
		var merges []string
		ranks := map[[2]string]int{}
		for range rng.IntN(12) {
			l, r := pieces[rng.IntN(len(pieces))], pieces[rng.IntN(len(pieces))]
			if _, dup := ranks[[2]string{l, r}]; dup || len(l+r) > 6 {
				continue
			}
			ranks[[2]string{l, r}] = len(merges)
			merges = append(merges, l+" "+r)
			pieces = append(pieces, l+r)
		}
		tok := mustNew(t, bpeVocab("gpt-2", merges))
		for range 20 {
			var b strings.Builder
			for range rng.IntN(10) {
				b.WriteString(alphabet[rng.IntN(len(alphabet))])
			}
			word := b.String()
			if got, want := pieceTexts(tok, tok.Encode(word, false, false)), naiveBPE(ranks, word); !slices.Equal(got, want) && word != "" {
				t.Fatalf("round %d, merges %q: Encode(%q) = %q, naive %q", round, merges, word, got, want)
			}
		}
	}
}

func TestDecodeBPE(t *testing.T) {
	v := bpeVocab("gpt-2", []string{"Ġ h", "Ġh i"}, piece{"<|c|>", 0, TypeControl}, piece{"<u>", 0, TypeUserDefined},
		piece{"<gone>", 0, TypeUnused}, piece{"<b>", 0, TypeByte}, piece{"x€", 0, TypeNormal})
	tok := mustNew(t, v)
	ids := map[string]int32{}
	for i, s := range v.Tokens {
		ids[s] = int32(i)
	}
	for _, c := range []struct {
		pieces []string
		want   string
	}{
		{[]string{"Ġhi", "Ġhi"}, " hi hi"},
		{[]string{"Ã", "©"}, "é"},
		{[]string{"<|c|>", "Ġhi", "<u>"}, "<|c|> hi<u>"},
		{[]string{"Ġhi", "<gone>", "<b>", "Ġhi"}, " hi hi"},
		{[]string{"x€"}, "x[UNK_BYTE_0xe282acx€]"},
	} {
		var in []int32
		for _, p := range c.pieces {
			in = append(in, ids[p])
		}
		if got := tok.Decode(in); got != c.want {
			t.Errorf("Decode(%q) = %q, want %q", c.pieces, got, c.want)
		}
	}
}

func TestNewRefusesBPE(t *testing.T) {
	tests := []struct {
		reason string
		edit   func(v *Vocab)
		want   string
	}{
		{"unknown model", func(v *Vocab) { v.Model = "bert" }, `tokenizer model "bert" is not supported`},
		{"no pre-tokenizer", func(v *Vocab) { v.Pre = "" }, "names no pre-tokenizer (supported: deepseek-r1-qwen, falcon3, gigachat"},
		{"unknown pre-tokenizer", func(v *Vocab) { v.Pre = "jina-v2-code" }, `pre-tokenizer "jina-v2-code" is not supported (supported: `},
		{"a byte without its character", func(v *Vocab) { v.Tokens[0] = "!!" }, `no token "!" for byte 0x21`},
		{"a merge without a space", func(v *Vocab) { v.Merges = append(v.Merges, "ab") }, `merge 1 "ab": no space between its two pieces`},
		{"a merge starting with its space", func(v *Vocab) { v.Merges = append(v.Merges, " a") }, `merge 1 " a": no space`},
		{"a merge whose piece is no token", func(v *Vocab) { v.Merges = append(v.Merges, "a c") }, `merge 1 "a c": the merged piece "ac" is not a token`},
		{"merges for SentencePiece", func(v *Vocab) { v.Model = ModelLlama }, "merges given for a SentencePiece (llama) vocabulary"},
	}
	for _, tt := range tests {
		v := bpeVocab("gpt-2", []string{"a b"})
		tt.edit(&v)
		_, err := New(v)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: New error = %v, want it to contain %q", tt.reason, err, tt.want)
		}
	}
	// A repeated pair keeps its first rank.
	v := bpeVocab("gpt-2", []string{"b c", "a b", "b c"})
	if _, err := New(v); err != nil {
		t.Errorf("repeated merge: %v", err)
	}
	// Bytes that UTF-8 never holds may lack their character, as in GPT-NeoX's vocabulary.
	v = bpeVocab("mpt", nil)
	v.Tokens, v.Types = v.Tokens[:0], v.Types[:0]
	for _, b := range byteOrder {
		if b != 0xC0 && b != 0xC1 && b < 0xF5 {
			v.Tokens, v.Types = append(v.Tokens, byteChars[b]), append(v.Types, TypeNormal)
		}
	}
	tok := mustNew(t, v)
	if s := "a\xc0\xff\U0010FFFF"; tok.Decode(tok.Encode(s, false, false)) != llamaDecoded(s) {
		t.Errorf("without 13 byte characters: %q does not come back", s)
	}
}

func TestFromGGUFBPE(t *testing.T) {
	// The last four tokens: <|endoftext|>, <PRE>, <|fim_prefix|>, <SUF>.
	v := bpeVocab("gpt-2", []string{"a b"}, piece{"<|endoftext|>", 0, TypeNormal}, piece{"<PRE>", 0, TypeNormal},
		piece{"<|fim_prefix|>", 0, TypeUserDefined}, piece{"<SUF>", 0, TypeNormal})
	n := int32(len(v.Tokens))
	kvs := func(pre string, types []int32, more ...gguf.KV) []gguf.KV {
		kvs := []gguf.KV{
			{Key: KeyModel, Value: gguf.ValueOf("gpt2")},
			{Key: KeyPre, Value: gguf.ValueOf(pre)},
			{Key: KeyTokens, Value: gguf.ArrayOf(v.Tokens)},
			{Key: KeyMerges, Value: gguf.ArrayOf(v.Merges)},
		}
		if types != nil {
			kvs = append(kvs, gguf.KV{Key: KeyTypes, Value: gguf.ArrayOf(types)})
		}
		return append(kvs, more...)
	}
	N, C, U := TypeNormal, TypeControl, TypeUserDefined
	tests := []struct {
		reason string
		kvs    []gguf.KV
		want   Vocab // Model, Tokens and Merges are v's
		last4  []int32
	}{
		{"GPT-2 defaults; no types: all normal, then control tokens by text", kvs("gpt-2", nil),
			Vocab{Pre: "gpt-2", BOS: 11, EOS: 11, UNK: -1}, []int32{C, C, C, C}},
		{"Llama 3 adds BOS by default", kvs("llama3", v.Types),
			Vocab{Pre: "llama3", BOS: 11, EOS: 11, UNK: -1, AddBOS: true}, []int32{C, C, C, C}},
		{"metadata wins; a fill-in-the-middle role with an id keeps its texts' types",
			kvs("llama-bpe", v.Types,
				gguf.KV{Key: KeyBOS, Value: gguf.ValueOf(uint32(n - 4))},
				gguf.KV{Key: KeyAddBOS, Value: gguf.ValueOf(false)},
				gguf.KV{Key: KeyAddEOS, Value: gguf.ValueOf(true)},
				gguf.KV{Key: "tokenizer.ggml.prefix_token_id", Value: gguf.ValueOf(uint32(0))}),
			Vocab{Pre: "llama-bpe", BOS: n - 4, EOS: 11, UNK: -1, AddEOS: true}, []int32{C, N, U, C}},
	}
	for _, tt := range tests {
		want := tt.want
		want.Model, want.Tokens, want.Merges = ModelGPT2, v.Tokens, v.Merges
		want.Types = append(slices.Clone(v.Types[:n-4]), tt.last4...)
		tok, err := FromGGUF(parseKVs(t, tt.kvs))
		if err != nil {
			t.Fatalf("%s: %v", tt.reason, err)
		}
		if diff := cmp.Diff(want, tok.Vocab()); diff != "" {
			t.Errorf("%s: (-want +got):\n%s", tt.reason, diff)
		}
	}
	if v.Types[n-4] != TypeNormal {
		t.Errorf("FromGGUF modified the types it read")
	}
}

func TestMetadataRoundTripBPE(t *testing.T) {
	v, err := TrainBPE("the cat sat on the mat", Qwen2, 400)
	if err != nil {
		t.Fatal(err)
	}
	for _, edit := range []func(*Vocab){
		func(*Vocab) {},
		func(v *Vocab) { v.AddBOS, v.AddEOS, v.AddSpacePrefix, v.UNK = true, true, true, 300 },
	} {
		want := v
		edit(&want)
		w := gguf.NewWriter()
		if err := want.WriteMetadata(w); err != nil {
			t.Fatal(err)
		}
		f, err := parseImage(w)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := FromGGUF(f)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, tok.Vocab()); diff != "" {
			t.Errorf("FromGGUF(Metadata()) (-want +got):\n%s", diff)
		}
	}
}
