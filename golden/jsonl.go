package golden

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxLineBytes bounds one JSONL line: a record with a sketch and top-5 ids is about 1.5 KB,
// so anything near this limit is not a trace.
const MaxLineBytes = 1 << 20

// TraceSuffix ends every trace file's name: <prompt_id>_trace.jsonl.
const TraceSuffix = "_trace.jsonl"

// Reader reads records one JSON line at a time. Blank lines are skipped; errors read
// "name:line: what".
type Reader struct {
	sc   *bufio.Scanner
	name string
	line int
}

// NewReader reads records from r; name labels its errors (usually the file's path).
func NewReader(r io.Reader, name string) *Reader {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxLineBytes)
	return &Reader{sc: sc, name: name}
}

// Line returns the line number of the record Next returned last.
func (r *Reader) Line() int { return r.line }

// Next returns the next record, or io.EOF after the last one.
func (r *Reader) Next() (Record, error) {
	for r.sc.Scan() {
		r.line++
		b := bytes.TrimSpace(r.sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var rec Record
		if err := json.Unmarshal(b, &rec); err != nil {
			return Record{}, fmt.Errorf("%s:%d: %w", r.name, r.line, lineError(err))
		}
		return rec, nil
	}
	if err := r.sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return Record{}, fmt.Errorf("%s:%d: line longer than %d bytes", r.name, r.line+1, MaxLineBytes)
		}
		return Record{}, fmt.Errorf("%s:%d: %w", r.name, r.line+1, err)
	}
	return Record{}, io.EOF
}

// lineError turns encoding/json's syntax errors, whose offsets count from the start of the
// line, into a readable column.
func lineError(err error) error {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("bad JSON at column %d: %v", se.Offset, se)
	}
	return err
}

// Writer writes records as JSON lines.
type Writer struct {
	w *bufio.Writer
}

// NewWriter writes records to w; call Flush at the end.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Write writes one record and a newline.
func (w *Writer) Write(rec Record) error {
	b, err := rec.MarshalJSON()
	if err != nil {
		return fmt.Errorf("record %s: %w", KeyOf(rec), err)
	}
	w.w.Write(b)
	return w.w.WriteByte('\n')
}

// Flush writes buffered records to the underlying writer.
func (w *Writer) Flush() error { return w.w.Flush() }

// Trace is the records of one prompt, as read from one file or built in memory.
type Trace struct {
	PromptID string
	Path     string // the file it was read from; "" in memory (raw_file is then not read)
	Records  []Record
}

// ReadTrace reads a trace file. An empty file, or one of blank lines only, is an error, and
// so is a key that appears twice (the error names both lines).
func ReadTrace(path string) (*Trace, error) { return readTrace(path, "") }

// readTrace reads a trace file whose records must all carry promptID, unless it is "".
func readTrace(path, promptID string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	t, err := readRecords(f, path, promptID)
	if err != nil {
		return nil, err
	}
	if len(t.Records) == 0 {
		return nil, fmt.Errorf("%s: no records", path)
	}
	return t, nil
}

// readRecords reads the records of the trace file at path from r, which may hold none.
func readRecords(in io.Reader, path, promptID string) (*Trace, error) {
	t := &Trace{Path: path}
	seen := make(map[Key]int)
	r := NewReader(in, path)
	for {
		rec, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		k := KeyOf(rec)
		if promptID != "" && rec.PromptID != promptID {
			return nil, fmt.Errorf("%s:%d: prompt_id %q disagrees with the file name (want %q)", path, r.Line(), rec.PromptID, promptID)
		}
		if prev, dup := seen[k]; dup {
			return nil, fmt.Errorf("%s:%d: duplicate key %s (first at line %d)", path, r.Line(), k, prev)
		}
		seen[k] = r.Line()
		if t.PromptID == "" {
			t.PromptID = rec.PromptID
		}
		t.Records = append(t.Records, rec)
	}
	return t, nil
}

// WriteTrace writes records to path atomically: a reader never sees a half-written trace.
func WriteTrace(path string, records []Record) error {
	return WriteFileAtomic(path, func(w io.Writer) error {
		jw := NewWriter(w)
		for _, rec := range records {
			if err := jw.Write(rec); err != nil {
				return err
			}
		}
		return jw.Flush()
	})
}

// TracePath returns the seed's file name for a prompt's trace in dir.
func TracePath(dir, promptID string) string { return filepath.Join(dir, promptID+TraceSuffix) }

// ReadDir reads every <prompt_id>_trace.jsonl in dir, sorted by prompt id. Each record's
// prompt_id must agree with its file's name. A folder without trace files is an error.
func ReadDir(dir string) ([]*Trace, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var traces []*Trace
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, TraceSuffix) {
			continue
		}
		id := strings.TrimSuffix(name, TraceSuffix)
		path := filepath.Join(dir, name)
		if id == "" {
			return nil, fmt.Errorf("%s: empty prompt id in file name", path)
		}
		t, err := readTrace(path, id)
		if err != nil {
			return nil, err
		}
		traces = append(traces, t)
	}
	if len(traces) == 0 {
		return nil, fmt.Errorf("%s: no *%s files", dir, TraceSuffix)
	}
	sort.Slice(traces, func(i, j int) bool { return traces[i].PromptID < traces[j].PromptID })
	return traces, nil
}

// WriteFileAtomic writes a file through a temporary file in the same folder and a rename, so
// the path holds either its old content or the complete new one.
func WriteFileAtomic(path string, write func(io.Writer) error) (err error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	bw := bufio.NewWriter(f)
	if err = write(bw); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	if err = f.Chmod(0o644); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
