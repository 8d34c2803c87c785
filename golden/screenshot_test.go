package golden

import (
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestHeatmapScreenshot renders the demo report in headless Chromium through
// scripts/heatmap-screenshot.sh and checks that the picture shows the heatmap: cells in the
// identical colour, in several error decades, in the size-unknown colour, and the FIRST_FAIL
// outline; and the shape section of p0_short: its strips of positions and channels.
func TestHeatmapScreenshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser; skipped with -short")
	}
	found := false
	for _, b := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if _, err := exec.LookPath(b); err == nil {
			found = true
		}
	}
	if !found && os.Getenv("CHROMIUM") == "" {
		t.Skip("no chromium on PATH (apt-get install -y chromium); the heatmap page is not rendered")
	}
	dir := t.TempDir()
	page, shot := filepath.Join(dir, "report.html"), filepath.Join(dir, "shot.png")
	if err := demoShapeReport(t).WriteFile(page, FormatHTML); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("../scripts/heatmap-screenshot.sh", page, shot, "1200,1700").CombinedOutput()
	if err != nil {
		t.Fatalf("heatmap-screenshot.sh: %v\n%s", err, out)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot does not decode as PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1200 || b.Dy() != 1700 {
		t.Errorf("screenshot is %dx%d, want 1200x1700", b.Dx(), b.Dy())
	}
	// The legend at the top shows every colour once; count only below it. Its colour bar
	// is the first thing drawn in the last decade's colour.
	top := firstRowWith(img, decadeColours[len(decadeColours)-1])
	if top < 0 {
		t.Fatal("no legend colour bar in the screenshot")
	}
	counts := colourCounts(img, top+40)
	// A heatmap cell shows 38x18 pixels of its colour; 600 of them mean a drawn cell.
	const cellPixels = 600
	for _, c := range []struct {
		what, hex string
		min       int
	}{
		{"identical cells", colourIdentical, cellPixels},
		{"size-unknown cells", colourUnsized, cellPixels},
		{"FIRST_FAIL outlines", colourFirstFail, 200},
	} {
		if counts[c.hex] < c.min {
			t.Errorf("%s (%s): %d pixels below the legend, want at least %d", c.what, c.hex, counts[c.hex], c.min)
		}
	}
	decades := 0
	for _, hex := range decadeColours {
		if counts[hex] >= cellPixels {
			decades++
		}
	}
	if decades < 3 {
		t.Errorf("%d error decades drawn as cells, want at least 3 (pixel counts %v)", decades, counts)
	}
	// The shape's strips, 720x14 each: 37 of 40 positions and 1 of 8 heads divergent.
	const stripPixels = 720 * 14
	wantDiv := stripPixels*37/40 + stripPixels/8
	if d := counts[colourDivergent]; d < wantDiv*9/10 || d > wantDiv*11/10 {
		t.Errorf("shape strips: %d divergent pixels (%s), want about %d", d, colourDivergent, wantDiv)
	}
	if c := counts[colourClean]; c < (2*stripPixels-wantDiv)*9/10 {
		t.Errorf("shape strips: %d clean pixels (%s), want about %d", c, colourClean, 2*stripPixels-wantDiv)
	}
	t.Logf("pixels per colour: identical %d, size unknown %d, outline %d, %d decades drawn; shape strips: divergent %d, clean %d",
		counts[colourIdentical], counts[colourUnsized], counts[colourFirstFail], decades, counts[colourDivergent], counts[colourClean])
}

func hexAt(img image.Image, x, y int) string {
	r, g, b, _ := img.At(x, y).RGBA()
	return fmt.Sprintf("#%02x%02x%02x", r>>8, g>>8, b>>8)
}

// colourCounts counts the pixels of each colour in the rows from y0 down.
func colourCounts(img image.Image, y0 int) map[string]int {
	counts := map[string]int{}
	b := img.Bounds()
	for y := max(y0, b.Min.Y); y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			counts[hexAt(img, x, y)]++
		}
	}
	return counts
}

// firstRowWith returns the first row holding a pixel of colour hex, or -1.
func firstRowWith(img image.Image, hex string) int {
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if hexAt(img, x, y) == hex {
				return y
			}
		}
	}
	return -1
}
