package tokenizer

import (
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"
)

// Special is a special token of a model family at its id in the family's real vocabulary.
type Special struct {
	ID       int32
	Text     string
	Type     int32 // TypeControl or TypeUserDefined
	Reserved bool  // a placeholder ("<|reserved_special_token_N|>"), left out of small vocabularies
}

// Family is the layout of a byte-level BPE model family's vocabulary that TrainBPE follows:
// regular tokens from id 0, then the special tokens at their real ids.
type Family struct {
	Name     string
	Pre      string    // tokenizer.ggml.pre
	Specials []Special // ascending ids, without gaps
	BOS, EOS string    // texts of the BOS and EOS tokens, among Specials
	AddBOS   bool      // add_bos_token of the family's GGUF files
}

// Llama3 is the layout of Llama 3's vocabulary (Meta-Llama-3-8B): 128000 regular tokens,
// then 256 special tokens, 128000 to 128255, most of them reserved placeholders.
var Llama3 = Family{
	Name: "llama3", Pre: "llama-bpe", BOS: "<|begin_of_text|>", EOS: "<|end_of_text|>", AddBOS: true,
	Specials: llama3Specials(),
}

func llama3Specials() []Special {
	named := map[int32]string{
		128000: "<|begin_of_text|>", 128001: "<|end_of_text|>",
		128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128009: "<|eot_id|>",
	}
	specials := make([]Special, 0, 256)
	reserved := 0
	for id := int32(128000); id < 128256; id++ {
		s := Special{ID: id, Text: named[id], Type: TypeControl}
		if s.Text == "" {
			s.Text, s.Reserved = "<|reserved_special_token_"+strconv.Itoa(reserved)+"|>", true
			reserved++
		}
		specials = append(specials, s)
	}
	return specials
}

// Qwen2 is the layout of the vocabulary of Qwen2 and Qwen2.5 (base models): 151643 regular
// tokens, then 22 special tokens, 151643 to 151664. Their GGUF files pad the vocabulary to
// 151936 tokens.
var Qwen2 = Family{
	Name: "qwen2", Pre: "qwen2", BOS: "<|endoftext|>", EOS: "<|endoftext|>",
	Specials: func() []Special {
		texts := []string{"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>",
			"<|object_ref_end|>", "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>",
			"<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>",
			"<tool_call>", "</tool_call>", "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>",
			"<|fim_pad|>", "<|repo_name|>", "<|file_sep|>"}
		specials := make([]Special, len(texts))
		for i, text := range texts {
			typ := TypeControl
			if !looksSpecial(text) {
				typ = TypeUserDefined // as Qwen's tokenizer.json marks them, and its GGUF files
			}
			specials[i] = Special{ID: 151643 + int32(i), Text: text, Type: typ}
		}
		return specials
	}(),
}

// TrainBPE learns a byte-level BPE vocabulary of exactly size tokens from corpus in the
// layout of family f, for the project's generated models. The result carries everything a
// GGUF needs (Vocab.WriteMetadata writes it): tokens, types, merges, the pre-tokenizer,
// BOS and EOS, and add_bos_token.
//
// Layout: the 256 byte characters in GPT-2's order, then the learned pieces in the order
// they were learned (tokenizer.ggml.merges holds the pair each came from, in the same
// order). When size leaves room for all of the family's special tokens at their real ids,
// they go there and the learned pieces stop below the first of them; otherwise the
// family's special tokens other than reserved placeholders follow the learned pieces.
// Every id left over, before the special tokens or after them, becomes an unused
// "[PAD<id>]", as llama.cpp's converter pads vocabularies.
//
// Training sees the corpus as Encode(corpus, false, false) sees text: the user-defined
// special tokens cut out, each remaining fragment cut into words by the family's
// pre-tokenizer, each word in the byte-level alphabet. Each step merges the most frequent
// adjacent pair (ties: the smaller merged text, then the smaller left text); merges never
// cross a word boundary, and a pair whose merged text is already a token is never merged,
// so each piece has exactly one merge and Encode, merging by rank, reproduces the learned
// segmentation. Training stops early when no pair is left. The result is a pure function
// of the arguments.
func TrainBPE(corpus string, f Family, size int) (Vocab, error) {
	v, _, err := trainBPE(corpus, f, size)
	return v, err
}

// trainBPE is TrainBPE that also returns the learned segmentation of each distinct
// (byte-level) word, for tests.
func trainBPE(corpus string, f Family, size int) (Vocab, map[string][]string, error) {
	if err := checkUTF8(corpus); err != nil {
		return Vocab{}, nil, err
	}
	full := len(f.Specials) > 0 && size > int(f.Specials[len(f.Specials)-1].ID)
	specials := f.Specials
	if !full {
		specials = slices.DeleteFunc(slices.Clone(specials), func(s Special) bool { return s.Reserved })
	}
	regular := size - len(specials) // ids before the special tokens
	if full {
		regular = int(f.Specials[0].ID)
	}
	if regular < 256 {
		return Vocab{}, nil, fmt.Errorf("tokenizer: vocabulary size %d leaves no room for the 256 byte tokens and the %d special tokens of %s", size, len(specials), f.Name)
	}

	// The special tokens and bytes alone: a tokenizer that cuts the corpus as Encode will.
	base := Vocab{Model: ModelGPT2, Pre: f.Pre, BOS: -1, EOS: -1, UNK: -1}
	for _, b := range byteOrder {
		base.Tokens = append(base.Tokens, byteChars[b])
		base.Types = append(base.Types, TypeNormal)
	}
	for _, s := range specials {
		base.Tokens = append(base.Tokens, s.Text)
		base.Types = append(base.Types, s.Type)
	}
	cutter, err := New(base)
	if err != nil {
		return Vocab{}, nil, fmt.Errorf("tokenizer: family %s: %w", f.Name, err)
	}

	tr := &trainer{pairs: map[[2]int32]int{}, where: map[[2]int32][]int32{}, reserved: map[string]bool{}}
	symbol := map[string]int32{}
	for _, text := range base.Tokens[:256] {
		symbol[text] = int32(len(tr.texts))
		tr.texts = append(tr.texts, text)
		tr.blocked = append(tr.blocked, false)
	}
	for _, text := range base.Tokens[256:] {
		tr.reserved[text] = true
	}
	wordText := tr.splitBPE(cutter, corpus, symbol)
	merged, from := tr.learn(regular-256, true)

	v := Vocab{Model: ModelGPT2, Pre: f.Pre, BOS: -1, EOS: -1, UNK: -1, AddBOS: f.AddBOS}
	add := func(text string, typ int32) {
		v.Tokens = append(v.Tokens, text)
		v.Types = append(v.Types, typ)
	}
	pad := func(to int) {
		for len(v.Tokens) < to {
			add("[PAD"+strconv.Itoa(len(v.Tokens))+"]", TypeUnused)
		}
	}
	for _, text := range base.Tokens[:256] {
		add(text, TypeNormal)
	}
	for i, id := range merged {
		add(tr.texts[id], TypeNormal)
		v.Merges = append(v.Merges, tr.texts[from[i][0]]+" "+tr.texts[from[i][1]])
	}
	if full {
		pad(regular)
	}
	for _, s := range specials {
		if s.Text == f.BOS {
			v.BOS = int32(len(v.Tokens))
		}
		if s.Text == f.EOS {
			v.EOS = int32(len(v.Tokens))
		}
		add(s.Text, s.Type)
	}
	pad(size)

	seg := make(map[string][]string, len(tr.words))
	for i, w := range tr.words {
		pieces := make([]string, len(w))
		for j, s := range w {
			pieces[j] = tr.texts[s]
		}
		seg[wordText[i]] = pieces
	}
	return v, seg, nil
}

// splitBPE cuts the corpus into byte-level words with cutter, as Encode does, and fills
// tr.words (distinct words, sorted) with their byte symbols. It returns each word's text.
func (tr *trainer) splitBPE(cutter *Tokenizer, corpus string, symbol map[string]int32) []string {
	counts := map[string]int{}
	var w words
	for _, f := range cutter.partition(corpus, false) {
		if f.id >= 0 {
			continue
		}
		w.split(corpus[f.start:f.end], cutter.rule.pattern)
		start := 0
		for _, end := range w.ends {
			counts[string(appendByteLevel(nil, w.cpts[start:end]))]++
			start = end
		}
	}
	texts := make([]string, 0, len(counts))
	for text := range counts {
		texts = append(texts, text)
	}
	slices.Sort(texts)
	tr.words = make([][]int32, len(texts))
	tr.freq = make([]int, len(texts))
	tr.seen = make([]int, len(texts))
	for i, text := range texts {
		for _, r := range text {
			tr.words[i] = append(tr.words[i], symbol[string(r)])
		}
		tr.freq[i] = counts[text]
	}
	return texts
}

// checkUTF8 refuses a training corpus that is not valid UTF-8, naming the first bad byte.
func checkUTF8(corpus string) error {
	if utf8.ValidString(corpus) {
		return nil
	}
	i := 0
	for i < len(corpus) {
		r, n := utf8.DecodeRuneInString(corpus[i:])
		if r == utf8.RuneError && n == 1 {
			break
		}
		i += n
	}
	return fmt.Errorf("tokenizer: training corpus is not valid UTF-8 at byte %d", i)
}
