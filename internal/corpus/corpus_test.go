package corpus

import (
	"strings"
	"testing"

	_ "github.com/gretabisect/gretabisect/internal/testutil"
)

func TestTextIsPlainASCIIProse(t *testing.T) {
	if n := len(Text); n < 30000 {
		t.Fatalf("len(Text) = %d bytes, want at least 30000", n)
	}
	for i, r := range []byte(Text) {
		if r != '\n' && (r < 0x20 || r > 0x7e) {
			t.Fatalf("Text[%d] = %#x, want printable ASCII or newline", i, r)
		}
	}
	if !strings.HasSuffix(Text, "\n") || strings.HasSuffix(Text, "\n\n") {
		t.Errorf("Text must end with exactly one newline")
	}
	// Prose in paragraphs, not one block.
	if n := strings.Count(Text, "\n\n"); n < 100 {
		t.Errorf("Text has %d paragraph breaks, want at least 100", n)
	}
	// Written text, not a paragraph repeated to reach the length.
	seen := map[string]bool{}
	for _, line := range strings.Split(Text, "\n") {
		if len(line) > 200 && seen[line] {
			t.Errorf("paragraph repeated: %.60q...", line)
		}
		seen[line] = true
	}
}

func TestShortIsFirstSentence(t *testing.T) {
	if Short != "The river was quiet that morning." {
		t.Errorf("Short = %q", Short)
	}
	if !strings.HasPrefix(Text, Short) {
		t.Errorf("Text does not start with Short")
	}
}
