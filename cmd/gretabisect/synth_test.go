package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gretabisect/gretabisect/internal/synth"
)

func TestSynthWritesTheGeneratorsBytes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.gguf")
	code, out, errs := runCLI(t, "synth", "--preset", "tiny", "--dtype", "f16", "--seed", "9", "--out", path)
	if code != exitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want, err := synth.Generate(synth.Tiny, synth.F16, 9)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("file differs from synth.Generate(tiny, f16, 9)")
	}
	if !strings.HasPrefix(out, "wrote "+path+": tiny f16 seed 9, ") {
		t.Errorf("stdout %q", out)
	}
	// stderr is not a terminal: plain progress lines, no carriage returns, ending at 100%.
	lines := strings.Split(strings.TrimSuffix(errs, "\n"), "\n")
	if strings.Contains(errs, "\r") || len(lines) < 2 || len(lines) > 10 || !strings.Contains(lines[len(lines)-1], "100%") {
		t.Errorf("progress on a non-terminal:\n%s", errs)
	}
}

// The usage lists every preset with its family's settings.
func TestSynthListsThePresets(t *testing.T) {
	code, _, errs := runCLI(t, "synth", "-h")
	if code != exitOK {
		t.Fatalf("synth -h: exit %d", code)
	}
	for _, want := range []string{
		"  tiny          llama: 10 layers, width 256, 8/2 heads of 32, FFN 768, 2048 tokens, RoPE base 10000\n",
		"  tiny-llama3   llama: 10 layers, width 256, 8/2 heads of 32, FFN 1024, 2048 tokens, RoPE base 500000 with llama3 scaling x32, tied\n",
		"  tiny-qwen2    qwen2: 10 layers, width 448, 14/2 heads of 32, FFN 1216, 2048 tokens, NEOX RoPE base 1e+06, q/k/v biases, tied\n",
		"  llama3.2-1b   llama: 16 layers, width 2048, 32/8 heads of 64, FFN 8192, 128256 tokens, RoPE base 500000 with llama3 scaling x32, tied\n",
		"  qwen2.5-0.5b  qwen2: 24 layers, width 896, 14/2 heads of 64, FFN 4864, 151936 tokens, NEOX RoPE base 1e+06, q/k/v biases, tied\n",
		"  tinyllama     llama: 22 layers, width 2048, 32/4 heads of 64, FFN 5632, 32000 tokens, RoPE base 10000\n",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("usage lacks %q:\n%s", want, errs)
		}
	}
}

func TestSynthQuiet(t *testing.T) {
	code, _, errs := runCLI(t, "synth", "--quiet", "--out", filepath.Join(t.TempDir(), "m.gguf"))
	if code != exitOK || errs != "" {
		t.Errorf("exit %d, stderr %q; want 0 and nothing", code, errs)
	}
}

func TestSynthRefusesBadFlags(t *testing.T) {
	out := filepath.Join(t.TempDir(), "m.gguf")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--preset", "huge", "--out", out}, `gretabisect synth: --preset: synth: unknown preset "huge" (want one of llama3.2-1b, qwen2.5-0.5b, tiny, tiny-llama3, tiny-qwen2, tinyllama)`},
		{[]string{"--dtype", "q2_k", "--out", out}, `gretabisect synth: --dtype: synth: unknown dtype "q2_k" (want f32, f16, q8_0 or q4_k)`},
		{[]string{"--preset", "tiny"}, "gretabisect synth: --out PATH is required"},
		{[]string{"--out", filepath.Join(out, "no", "such", "dir.gguf")}, "gretabisect synth: synth: "},
	} {
		code, _, errs := runCLI(t, append([]string{"synth", "--quiet"}, tc.args...)...)
		if code != exitUsage || !strings.HasPrefix(errs, tc.want) || strings.Count(errs, "\n") != 1 {
			t.Errorf("synth %q: exit %d, stderr %q; want exit 2 and one line starting %q", tc.args, code, errs, tc.want)
		}
	}
}

func TestProgressLineOnATerminalRedraws(t *testing.T) {
	var b bytes.Buffer
	p := newProgressLine(&b, "tiny f32")
	p.tty = true
	for i := range uint64(11) {
		p.update(i*10, 100)
	}
	p.done()
	s := b.String()
	if !strings.HasPrefix(s, "\rsynth tiny f32:   0%") || !strings.Contains(s, "\rsynth tiny f32: 100%") || !strings.HasSuffix(s, "\n") || strings.Count(s, "\n") != 1 {
		t.Errorf("terminal progress %q: want \\r redraws, the first and the last, then one newline", s)
	}
}
