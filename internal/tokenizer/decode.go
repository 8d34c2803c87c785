package tokenizer

import "strings"

// Decode returns the text of ids, as llama.cpp's detokenize with remove_special false and
// unparse_special true, without its clean_up_tokenization_spaces pass: control, unknown and
// user-defined tokens as their text (so "<s>" stays visible), unused and undefined tokens
// as nothing, and an id outside the vocabulary as U+FFFD. SentencePiece normal pieces have
// U+2581 turned back into spaces and byte tokens give their byte; byte-level normal pieces
// give the bytes their characters stand for. When AddSpacePrefix is set, one leading space
// of the first token is dropped: it is the space SentencePiece Encode adds.
//
// So Decode(Encode(s, false, false)) == s for valid UTF-8 s: for SentencePiece when s
// contains no U+2581 (given pieces or byte tokens for its characters); for byte-level BPE
// without AddSpacePrefix always, and also with parseSpecial.
func (t *Tokenizer) Decode(ids []int32) string {
	var b strings.Builder
	for i, id := range ids {
		if id < 0 || int(id) >= len(t.decoded) {
			b.WriteString("\uFFFD")
			continue
		}
		piece := t.decoded[id]
		if i == 0 && t.v.AddSpacePrefix {
			piece = strings.TrimPrefix(piece, " ")
		}
		b.WriteString(piece)
	}
	return b.String()
}
