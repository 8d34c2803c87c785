package ownerr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gretabisect/gretabisect/golden"
)

// NoiseFile is the name of a device's measured floors beside its goldens:
// golden/testdata/<device>/<model>/noise.json.
const NoiseFile = "noise.json"

// noiseVersion is the format's version; readers refuse others.
const noiseVersion = 1

// NoisePath returns where the floors of device on model live under a golden directory.
func NoisePath(goldenDir, device, model string) string {
	return filepath.Join(goldenDir, device, model, NoiseFile)
}

// Write writes f as noise.json: one floor a line, in causal order, every number with four
// significant digits rounded up (a floor never drops below what was measured), so the same
// measurements always give the same bytes:
//
//	{
//	  "version": 1,
//	  "device": "cpu-f64acc",
//	  "reference": "cpu",
//	  "model": "tiny",
//	  "method": "replay",
//	  "prompts": ["p0_short", "p6_len_16", "p6_len_32"],
//	  "floors": [
//	    {"stage": "residual_pre_attn", "layer": 0, "rel_l2": 0, "mae": 0, "n": 96},
//	    {"stage": "attn_in", "layer": 0, "rel_l2": 1.234e-07, "mae": 2.346e-08, "n": 96},
//	    ...
//	  ]
//	}
func (f *Floors) Write(w io.Writer) error {
	fl := *f
	fl.Floors = append([]Floor(nil), f.Floors...)
	fl.sort()
	var b bytes.Buffer
	str := func(s string) string { q, _ := json.Marshal(s); return string(q) }
	fmt.Fprintf(&b, "{\n  \"version\": %d,\n", noiseVersion)
	fmt.Fprintf(&b, "  \"device\": %s,\n  \"reference\": %s,\n  \"model\": %s,\n  \"method\": %s,\n",
		str(fl.Device), str(fl.Reference), str(fl.Model), str(fl.Method))
	prompts := make([]string, len(fl.Prompts))
	for i, p := range fl.Prompts {
		prompts[i] = str(p)
	}
	fmt.Fprintf(&b, "  \"prompts\": [%s],\n  \"floors\": [", strings.Join(prompts, ", "))
	for i, x := range fl.Floors {
		if i > 0 {
			b.WriteByte(',')
		}
		if math.IsNaN(x.RelL2) || math.IsInf(x.RelL2, 0) || math.IsNaN(x.MAE) || math.IsInf(x.MAE, 0) {
			return fmt.Errorf("ownerr: floor of %s layer %d is not finite (rel_l2 %v, MAE %v)", x.Stage, x.Layer, x.RelL2, x.MAE)
		}
		fmt.Fprintf(&b, "\n    {\"stage\": %s, \"layer\": %d, \"rel_l2\": %s, \"mae\": %s, \"n\": %d}",
			str(x.Stage.String()), x.Layer, roundUp(x.RelL2), roundUp(x.MAE), x.N)
	}
	b.WriteString("\n  ]\n}\n")
	_, err := w.Write(b.Bytes())
	return err
}

// WriteFile writes f to path through a temporary file and a rename: never half a file.
func (f *Floors) WriteFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("ownerr: %w", err)
	}
	return golden.WriteFileAtomic(path, f.Write)
}

// roundUp formats v >= 0 with four significant digits, rounded up: strconv's shortest
// decimal arithmetic, the same bytes on every machine.
func roundUp(v float64) string {
	if v == 0 {
		return "0"
	}
	s := strconv.FormatFloat(v, 'e', 3, 64)
	if p, _ := strconv.ParseFloat(s, 64); p >= v {
		return s
	}
	// Add one to the fourth digit: "d.ddde-XX".
	mant, exp, _ := strings.Cut(s, "e")
	digits, _ := strconv.Atoi(strings.Replace(mant, ".", "", 1))
	e, _ := strconv.Atoi(exp)
	if digits++; digits == 10000 {
		digits, e = 1000, e+1
	}
	return fmt.Sprintf("%d.%03de%+03d", digits/1000, digits%1000, e)
}

// noiseJSON is the file's shape for reading.
type noiseJSON struct {
	Version   int      `json:"version"`
	Device    string   `json:"device"`
	Reference string   `json:"reference"`
	Model     string   `json:"model"`
	Method    string   `json:"method"`
	Prompts   []string `json:"prompts"`
	Floors    []struct {
		Stage string   `json:"stage"`
		Layer *int     `json:"layer"`
		RelL2 *float64 `json:"rel_l2"`
		MAE   float64  `json:"mae"`
		N     int      `json:"n"`
	} `json:"floors"`
}

// ReadFloors reads a noise.json. Errors name the file and the entry: an unknown stage, a
// missing layer or rel_l2, a negative value, a floor given twice, another version.
func ReadFloors(r io.Reader, name string) (*Floors, error) {
	var nj noiseJSON
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&nj); err != nil {
		return nil, fmt.Errorf("ownerr: %s: %w", name, err)
	}
	if nj.Version != noiseVersion {
		return nil, fmt.Errorf("ownerr: %s: version %d, this build reads version %d", name, nj.Version, noiseVersion)
	}
	if nj.Method != MethodReplay && nj.Method != MethodPerOp {
		return nil, fmt.Errorf("ownerr: %s: method %q (want %s or %s)", name, nj.Method, MethodReplay, MethodPerOp)
	}
	f := &Floors{Device: nj.Device, Reference: nj.Reference, Model: nj.Model, Method: nj.Method, Prompts: nj.Prompts}
	seen := map[[2]int]bool{}
	for i, x := range nj.Floors {
		where := fmt.Sprintf("ownerr: %s: floor %d", name, i+1)
		st, ok := golden.StageByName(x.Stage)
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: unknown stage %q", where, x.Stage)
		case x.Layer == nil || x.RelL2 == nil:
			return nil, fmt.Errorf("%s (%s): layer and rel_l2 are required", where, x.Stage)
		case *x.RelL2 < 0 || x.MAE < 0 || x.N < 0:
			return nil, fmt.Errorf("%s (%s layer %d): negative value", where, x.Stage, *x.Layer)
		case seen[[2]int{int(st), *x.Layer}]:
			return nil, fmt.Errorf("%s: %s layer %d given twice", where, x.Stage, *x.Layer)
		}
		seen[[2]int{int(st), *x.Layer}] = true
		f.Floors = append(f.Floors, Floor{Stage: st, Layer: *x.Layer, RelL2: *x.RelL2, MAE: x.MAE, N: x.N})
	}
	f.sort()
	return f, nil
}

// ReadFloorsFile reads the noise.json at path; a missing file gives nil floors and an error
// wrapping fs.ErrNotExist, so a caller can fall back to the default floors.
func ReadFloorsFile(path string) (*Floors, error) {
	file, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("ownerr: no measured floors: %w", err)
		}
		return nil, fmt.Errorf("ownerr: %w", err)
	}
	defer file.Close()
	return ReadFloors(file, path)
}
