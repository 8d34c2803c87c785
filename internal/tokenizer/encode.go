package tokenizer

import (
	"slices"
	"strings"
)

// Encode returns the token ids of text.
//
// addSpecial adds BOS in front and EOS at the end as the vocabulary's AddBOS and AddEOS ask
// (llama.cpp's add_special). parseSpecial turns control and unknown token texts written in
// the text, such as "<s>" or "<|begin_of_text|>", into their ids (llama.cpp's
// parse_special); without it they are ordinary text. User-defined tokens are always
// recognised. An empty text gives no tokens besides the added ones.
func (t *Tokenizer) Encode(text string, addSpecial, parseSpecial bool) []int32 {
	out := make([]int32, 0, len(text)/2+2)
	if addSpecial && t.v.AddBOS {
		out = append(out, t.v.BOS)
	}
	var s session
	prevSpecial := true // the start of the text counts as following a special token
	for _, f := range t.partition(text, parseSpecial) {
		switch {
		case f.id >= 0:
			out = append(out, f.id)
		case t.ranks != nil:
			out = t.encodeBPE(&s, text[f.start:f.end], out)
		default:
			frag := text[f.start:f.end]
			if t.v.AddSpacePrefix && prevSpecial {
				frag = " " + frag
			}
			out = s.tokenize(t, strings.ReplaceAll(frag, " ", spaceMarker), out)
		}
		prevSpecial = f.id >= 0
	}
	if addSpecial && t.v.AddEOS {
		out = append(out, t.v.EOS)
	}
	return out
}

// fragment is text[start:end] when id < 0, else the special token id.
type fragment struct {
	start, end int
	id         int32
}

// partition splits text around special token texts. Like llama.cpp, it takes one special
// token at a time in t.special's order (longest first) and cuts every non-overlapping
// occurrence, left to right, out of the text fragments that remain.
func (t *Tokenizer) partition(text string, parseSpecial bool) []fragment {
	if text == "" {
		return nil
	}
	frags := []fragment{{0, len(text), -1}}
	var next []fragment
	for _, id := range t.special {
		if !parseSpecial && t.typeOf(id) != TypeUserDefined {
			continue
		}
		tok := t.v.Tokens[id]
		next = next[:0]
		for _, f := range frags {
			if f.id >= 0 {
				next = append(next, f)
				continue
			}
			for f.start < f.end {
				i := strings.Index(text[f.start:f.end], tok)
				if i < 0 {
					break
				}
				if i > 0 {
					next = append(next, fragment{f.start, f.start + i, -1})
				}
				next = append(next, fragment{id: id})
				f.start += i + len(tok)
			}
			if f.start < f.end {
				next = append(next, f)
			}
		}
		frags, next = next, frags
	}
	return frags
}

// sortSpecial orders special tokens for partition: longest text first, then lowest id.
// (llama.cpp leaves the order of equally long texts to std::sort; a fixed order keeps
// Encode deterministic.)
func sortSpecial(ids []int32, tokens []string) {
	slices.SortFunc(ids, func(a, b int32) int {
		if d := len(tokens[b]) - len(tokens[a]); d != 0 {
			return d
		}
		return int(a - b)
	})
}

// symbol is a run text[start:start+n] of the escaped fragment; n == 0 once merged into its
// left neighbour. prev and next link the live symbols (-1 at the ends).
type symbol struct {
	start, n   int
	prev, next int
}

// bigram is a candidate merge of symbols left and right whose texts had total length size
// when it was queued; a later merge of either side changes that length and voids it.
type bigram struct {
	left, right int
	size        int
	priority    float64
}

// before orders the merge queue: higher priority first, then the leftmost pair.
func (a bigram) before(b bigram) bool {
	return a.priority > b.priority || (a.priority == b.priority && a.left < b.left)
}

// session holds the buffers of one Encode call, reused across its fragments and words.
type session struct {
	syms  []symbol
	queue []bigram // binary heap ordered by before
	words words    // byte-level BPE: the current fragment's words
	buf   []byte   // byte-level BPE: the current word
}

// merge cuts text into UTF-8 characters (by lead byte, as llama.cpp does, so invalid input
// is still split deterministically) and merges adjacent symbols, best priority first (see
// Tokenizer.priority), until no pair merges. The result is the list linked from s.syms[0].
// llama.cpp runs this same loop for both models.
func (s *session) merge(t *Tokenizer, text string) {
	if cap(s.syms) < len(text) {
		s.syms = make([]symbol, 0, len(text))
		s.queue = make([]bigram, 0, len(text))
	}
	s.syms = s.syms[:0]
	for off := 0; off < len(text); {
		n := min(utf8Len(text[off]), len(text)-off)
		s.syms = append(s.syms, symbol{start: off, n: n, prev: len(s.syms) - 1, next: len(s.syms) + 1})
		off += n
	}
	if len(s.syms) == 0 {
		return
	}
	s.syms[len(s.syms)-1].next = -1

	s.queue = s.queue[:0]
	for i := 1; i < len(s.syms); i++ {
		s.push(t, text, i-1, i)
	}
	for len(s.queue) > 0 {
		var b bigram
		b, s.queue = heapPop(s.queue)
		l, r := &s.syms[b.left], &s.syms[b.right]
		if l.n == 0 || r.n == 0 || l.n+r.n != b.size {
			continue // stale: one side has merged since b was queued
		}
		l.n += r.n
		r.n = 0
		l.next = r.next
		if r.next >= 0 {
			s.syms[r.next].prev = b.left
		}
		s.push(t, text, l.prev, b.left)
		s.push(t, text, b.left, l.next)
	}
}

// tokenize appends the ids of one escaped SentencePiece fragment to out.
func (s *session) tokenize(t *Tokenizer, text string, out []int32) []int32 {
	s.merge(t, text)
	if len(s.syms) == 0 {
		return out
	}
	for i := 0; i >= 0; i = s.syms[i].next {
		sym := s.syms[i]
		piece := text[sym.start : sym.start+sym.n]
		if id, ok := t.ids[piece]; ok {
			out = append(out, id)
			continue
		}
		for j := range len(piece) {
			out = append(out, t.byteID[piece[j]])
		}
	}
	return out
}

// utf8Len is the sequence length a UTF-8 lead byte announces; continuation and invalid
// bytes count as one, as in llama.cpp's unicode_len_utf8.
func utf8Len(b byte) int {
	switch {
	case b >= 0xF0:
		return 4
	case b >= 0xE0:
		return 3
	case b >= 0xC0:
		return 2
	}
	return 1
}

// push queues the merge of symbols left and right if the vocabulary merges them.
func (s *session) push(t *Tokenizer, text string, left, right int) {
	if left < 0 || right < 0 {
		return
	}
	start, mid := s.syms[left].start, s.syms[right].start
	end := mid + s.syms[right].n
	p, ok := t.priority(text, start, mid, end)
	if !ok {
		return
	}
	s.queue = heapPush(s.queue, bigram{left: left, right: right, size: end - start, priority: p})
}

// priority says whether the adjacent symbols text[start:mid] and text[mid:end] merge and
// how urgently (higher first). SentencePiece merges any pair that spells a piece, by the
// piece's score; byte-level BPE merges only listed pairs, by rank, the first listed first.
func (t *Tokenizer) priority(text string, start, mid, end int) (float64, bool) {
	if t.ranks != nil {
		rank, ok := t.ranks[[2]string{text[start:mid], text[mid:end]}]
		return -float64(rank), ok
	}
	id, ok := t.ids[text[start:end]]
	return float64(t.score(id)), ok
}
