// Package corpus is the project's own English text, written for it: essays and short stories
// on several everyday topics in plain ASCII. It teaches the tiny model its vocabulary
// (internal/synth trains the SPM vocabulary on it) and supplies the standard prompts, which
// are cut from its beginning at the token level: the text is long enough (about 40 KB) that
// even the real 32000-token Llama vocabulary turns it into several thousand tokens, well
// above the 1653 that the longest standard prompt needs.
package corpus

import (
	_ "embed"
	"strings"
)

// Text is the whole corpus: paragraphs separated by blank lines, ending with a newline.
//
//go:embed text.txt
var Text string

// Short is the corpus's first sentence ("The river was quiet that morning."), a few tokens
// long under any vocabulary: the text of the short standard prompt.
var Short = Text[:strings.IndexByte(Text, '.')+1]
