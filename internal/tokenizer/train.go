package tokenizer

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// FixedTokens is the number of tokens every trained vocabulary starts with: <unk> (0),
// <s> (1), </s> (2) and the byte tokens <0x00>..<0xFF> (3..258).
const FixedTokens = 3 + 256

// maxTrainedVocab keeps every rank exactly representable as a float32 score.
const maxTrainedVocab = 1 << 24

// Train learns a SentencePiece BPE vocabulary of at most vocabSize tokens from corpus, for
// the project's generated models. The vocabulary holds the FixedTokens, then the merged
// pieces in the order they were learned, then the corpus's characters (the most frequent
// ones when vocabSize cannot hold them all; the others fall back to byte tokens).
//
// The corpus is seen as Encode sees text: a space prefix, spaces as U+2581. It is cut into
// words that start at each U+2581, with runs of newlines as words of their own; merges never
// cross a word boundary, so a piece holds U+2581 only as its first character. Each step
// merges the most frequent adjacent pair (ties: the smaller concatenated text, then the
// smaller left text), skipping results that would spell a fixed token or a start or end of
// one at least two bytes long (such as "<s" or "s>"). Merged pieces score minus their
// rank and characters score below every merge, so that Encode, which merges the highest
// score first, reproduces the learned segmentation. Training stops early when no pair is
// left. The result is a pure function of the arguments.
func Train(corpus string, vocabSize int) (Vocab, error) {
	v, _, err := train(corpus, vocabSize)
	return v, err
}

// trainer is the state of one training run.
type trainer struct {
	texts    []string             // symbol id -> text
	blocked  []bool               // symbol id -> a character left out of the vocabulary
	words    [][]int32            // the distinct words as symbol ids
	freq     []int                // occurrences of each word
	pairs    map[[2]int32]int     // occurrences of adjacent pairs, weighted by freq
	where    map[[2]int32][]int32 // words that held the pair when it was counted
	queue    []candidate          // heap, best first; entries go stale when counts change
	seen     []int                // per word: the last step that rewrote it
	reserved map[string]bool      // texts never learned: fixed tokens and their ends
}

// candidate is a pair with the count it had when queued.
type candidate struct {
	count        int
	pair         [2]int32
	left, merged string
}

// train is Train that also returns the learned segmentation of each distinct word, for tests.
func train(corpus string, vocabSize int) (Vocab, map[string][]string, error) {
	if vocabSize < FixedTokens {
		return Vocab{}, nil, fmt.Errorf("tokenizer: vocabulary size %d is below the %d fixed tokens (<unk>, <s>, </s> and 256 bytes)", vocabSize, FixedTokens)
	}
	if vocabSize > maxTrainedVocab {
		return Vocab{}, nil, fmt.Errorf("tokenizer: vocabulary size %d is above %d, past which float32 scores cannot tell ranks apart", vocabSize, maxTrainedVocab)
	}
	if err := checkUTF8(corpus); err != nil {
		return Vocab{}, nil, err
	}

	v := fixedVocab()
	tr := &trainer{pairs: map[[2]int32]int{}, where: map[[2]int32][]int32{}, reserved: map[string]bool{}}
	for _, s := range v.Tokens {
		// Encode merges any two adjacent symbols that spell a token, fixed ones included,
		// so a learned proper prefix or suffix of a fixed token ("<s", "s>") would let it
		// form "<s>" where training never did. All fixed texts are ASCII and 3+ bytes long.
		for n := 2; n <= len(s); n++ {
			tr.reserved[s[:n]] = true
			tr.reserved[s[len(s)-n:]] = true
		}
	}

	wordText, chars := tr.split(corpus, vocabSize-FixedTokens)
	merged, _ := tr.learn(vocabSize-FixedTokens-len(chars), false)

	for rank, id := range merged {
		v.add(tr.texts[id], -float32(rank), TypeNormal)
	}
	for i, id := range chars {
		v.add(tr.texts[id], -float32(len(merged)+i), TypeNormal)
	}

	seg := make(map[string][]string, len(tr.words))
	for i, w := range tr.words {
		var pieces []string
		for _, s := range w {
			if !tr.blocked[s] {
				pieces = append(pieces, tr.texts[s])
				continue
			}
			for _, b := range []byte(tr.texts[s]) {
				pieces = append(pieces, byteTokenText(b))
			}
		}
		seg[wordText[i]] = pieces
	}
	return v, seg, nil
}

// learn merges the most frequent pair, again and again, until it has learned budget
// pieces or no pair is left. It returns the symbol ids of the learned pieces in order and
// the pair each was first learned from. A text is learned once: a later pair that spells
// it merges into the same symbol, unless distinct is set, in which case such a pair is
// never merged (byte-level BPE lists one merge per piece, see TrainBPE).
func (tr *trainer) learn(budget int, distinct bool) (merged []int32, from [][2]int32) {
	for i, w := range tr.words {
		tr.count(int32(i), w, +1)
	}
	for p := range tr.pairs {
		tr.push(p)
	}
	pieceOf := map[string]int32{} // merged text -> symbol id
	for step := 1; len(merged) < budget && len(tr.queue) > 0; step++ {
		var c candidate
		c, tr.queue = heapPop(tr.queue)
		if tr.pairs[c.pair] != c.count || c.count == 0 {
			continue // stale entry
		}
		id, ok := pieceOf[c.merged]
		switch {
		case ok && distinct:
			continue
		case !ok:
			id = int32(len(tr.texts))
			tr.texts = append(tr.texts, c.merged)
			tr.blocked = append(tr.blocked, false)
			pieceOf[c.merged] = id
			merged = append(merged, id)
			from = append(from, c.pair)
			if distinct {
				tr.reserved[c.merged] = true // no other pair will spell it
			}
		}
		tr.merge(c.pair, id, step)
	}
	return merged, from
}

// split cuts the escaped corpus into words, keeps the maxChars most frequent characters as
// symbols (ties: smaller text first) and fills tr.words with them. It returns the text of
// each word and the kept characters' symbol ids.
func (tr *trainer) split(corpus string, maxChars int) (words []string, chars []int32) {
	text := escape(corpus)
	counts := map[string]int{}
	for start := 0; start < len(text); {
		end := wordEnd(text, start)
		counts[text[start:end]]++
		start = end
	}
	words = make([]string, 0, len(counts))
	for w := range counts {
		words = append(words, w)
	}
	slices.Sort(words)

	charCount := map[string]int{}
	for _, w := range words {
		for _, r := range w {
			charCount[string(r)] += counts[w]
		}
	}
	all := make([]string, 0, len(charCount))
	for c := range charCount {
		all = append(all, c)
	}
	slices.SortFunc(all, func(a, b string) int {
		return cmp.Or(charCount[b]-charCount[a], strings.Compare(a, b))
	})
	charID := map[string]int32{}
	for i, c := range all {
		id := int32(len(tr.texts))
		tr.texts = append(tr.texts, c)
		tr.blocked = append(tr.blocked, i >= maxChars)
		charID[c] = id
		if i < maxChars {
			chars = append(chars, id)
		}
	}

	tr.words = make([][]int32, len(words))
	tr.freq = make([]int, len(words))
	tr.seen = make([]int, len(words))
	for i, w := range words {
		syms := make([]int32, 0, len(w))
		for _, r := range w {
			syms = append(syms, charID[string(r)])
		}
		tr.words[i] = syms
		tr.freq[i] = counts[w]
	}
	return words, chars
}

// escape returns corpus as Encode's merge loop sees it.
func escape(corpus string) string {
	if corpus == "" {
		return "" // Encode adds no space prefix to empty text
	}
	return spaceMarker + strings.ReplaceAll(corpus, " ", spaceMarker)
}

// wordEnd returns the end of the word that starts at text[start]: a run of newlines, or a
// run of other characters up to the next U+2581 or newline (a leading U+2581 belongs to
// the word).
func wordEnd(text string, start int) int {
	if text[start] == '\n' {
		end := start
		for end < len(text) && text[end] == '\n' {
			end++
		}
		return end
	}
	end := start
	if strings.HasPrefix(text[end:], spaceMarker) {
		end += len(spaceMarker)
	}
	for end < len(text) && text[end] != '\n' && !strings.HasPrefix(text[end:], spaceMarker) {
		end++
	}
	return end
}

// count adds sign times word i's frequency to the counts of its adjacent pairs.
func (tr *trainer) count(i int32, w []int32, sign int) {
	for j := 1; j < len(w); j++ {
		if tr.blocked[w[j-1]] || tr.blocked[w[j]] {
			continue
		}
		p := [2]int32{w[j-1], w[j]}
		tr.pairs[p] += sign * tr.freq[i]
		if sign > 0 {
			tr.where[p] = append(tr.where[p], i)
		}
	}
}

// touch records the pairs of w whose counts a rewrite of w changes.
func (tr *trainer) touch(touched map[[2]int32]bool, w []int32) {
	for j := 1; j < len(w); j++ {
		if !tr.blocked[w[j-1]] && !tr.blocked[w[j]] {
			touched[[2]int32{w[j-1], w[j]}] = true
		}
	}
}

// merge replaces every occurrence of pair by id in the words that hold it, left to right,
// and requeues the pairs whose counts changed.
func (tr *trainer) merge(pair [2]int32, id int32, step int) {
	touched := map[[2]int32]bool{}
	for _, i := range tr.where[pair] {
		if tr.seen[i] == step {
			continue
		}
		tr.seen[i] = step
		w := tr.words[i]
		if !hasPair(w, pair) {
			continue // the word lost the pair to an earlier merge
		}
		tr.count(i, w, -1)
		tr.touch(touched, w)
		out := w[:0]
		for j := 0; j < len(w); j++ {
			if j+1 < len(w) && w[j] == pair[0] && w[j+1] == pair[1] {
				out = append(out, id)
				j++
				continue
			}
			out = append(out, w[j])
		}
		tr.words[i] = out
		tr.count(i, out, +1)
		tr.touch(touched, out)
	}
	delete(tr.where, pair)
	for p := range touched { // any order: candidate.before is a total order
		if tr.pairs[p] == 0 {
			delete(tr.pairs, p)
			continue
		}
		tr.push(p)
	}
}

// push queues pair with its current count, unless its text is reserved.
func (tr *trainer) push(p [2]int32) {
	left := tr.texts[p[0]]
	c := candidate{count: tr.pairs[p], pair: p, left: left, merged: left + tr.texts[p[1]]}
	if tr.reserved[c.merged] {
		return
	}
	tr.queue = heapPush(tr.queue, c)
}

// before orders the queue: higher count, then smaller merged text, then smaller left text.
func (a candidate) before(b candidate) bool {
	if a.count != b.count {
		return a.count > b.count
	}
	if a.merged != b.merged {
		return a.merged < b.merged
	}
	return a.left < b.left
}

// hasPair reports whether p occurs in w.
func hasPair(w []int32, p [2]int32) bool {
	for j := 1; j < len(w); j++ {
		if w[j-1] == p[0] && w[j] == p[1] {
			return true
		}
	}
	return false
}

// fixedVocab returns the FixedTokens every generated vocabulary starts with: <unk>, <s>, </s>
// and the 256 byte tokens.
func fixedVocab() Vocab {
	v := Vocab{Model: ModelLlama, BOS: 1, EOS: 2, UNK: 0, AddBOS: true, AddSpacePrefix: true}
	v.add("<unk>", 0, TypeUnknown)
	v.add("<s>", 0, TypeControl)
	v.add("</s>", 0, TypeControl)
	for b := range 256 {
		v.add(byteTokenText(byte(b)), 0, TypeByte)
	}
	return v
}

func (v *Vocab) add(text string, score float32, typ int32) {
	v.Tokens = append(v.Tokens, text)
	v.Scores = append(v.Scores, score)
	v.Types = append(v.Types, typ)
}
