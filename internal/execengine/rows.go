package execengine

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/gretabisect/gretabisect/golden"
)

// keepRows handles the raw rows records name (raw_file, relative to the folder out of the
// engine's trace) while they exist: a record without a sketch gets the row's sketch, so
// that a tolerance policy can size its difference; the row is copied to
// rowsDir/<promptID>_rows/ and raw_file renamed to match, or raw_file is cleared when
// rowsDir is "". Rows that cannot be read, or do not hash to their record's hash, are left
// out (raw_file cleared) and counted in the returned note.
func keepRows(recs []golden.Record, out, rowsDir, promptID string) (note string, err error) {
	bad, firstBad := 0, ""
	for i := range recs {
		rec := &recs[i]
		if rec.RawFile == "" {
			continue
		}
		name := rec.RawFile
		rec.RawFile = ""
		row, problem := readRow(out, name, rec.Hash)
		if problem != "" {
			if bad++; bad == 1 {
				firstBad = fmt.Sprintf("%s: %s", golden.KeyOf(*rec), problem)
			}
			continue
		}
		if rec.Sketch == nil {
			rec.Sketch = golden.NewSketch(row)
		}
		if rowsDir == "" {
			continue
		}
		kept := filepath.Join(promptID+"_rows", name)
		if err := copyFile(filepath.Join(out, name), filepath.Join(rowsDir, kept)); err != nil {
			return "", fmt.Errorf("keeping raw rows: %w", err)
		}
		rec.RawFile = filepath.ToSlash(kept)
	}
	if bad > 0 {
		note = fmt.Sprintf("%s: %d raw_file rows left out (first: %s)", promptID, bad, firstBad)
	}
	return note, nil
}

// readRow reads a record's raw row and checks it against the record's hash; problem says
// what is wrong with it, "" when nothing is.
func readRow(out, name, hash string) (row []float32, problem string) {
	if !filepath.IsLocal(name) {
		return nil, fmt.Sprintf("raw_file %q is not a path inside the trace's folder", name)
	}
	_, row, err := golden.ReadNpyFile(filepath.Join(out, name))
	if err != nil {
		return nil, fmt.Sprintf("raw_file: %v", err)
	}
	if h := golden.HashRow(row); h != hash {
		return nil, fmt.Sprintf("raw_file %s hashes to %s, the record says %s", name, h, hash)
	}
	return row, ""
}

func copyFile(src, dst string) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
