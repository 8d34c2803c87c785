package execengine

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// runLog is the file one run's output is appended to: a header line, the engine's stdout
// and stderr as written, a footer line.
type runLog struct {
	f     *os.File
	start int64 // where the engine's output starts
}

func openLog(path, header string) (*runLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("run log: %w", err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("run log: %w", err)
	}
	fmt.Fprintf(f, "== gretabisect: %s\n", header)
	start, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("run log: %w", err)
	}
	return &runLog{f: f, start: start}, nil
}

func (l *runLog) end(footer string) { fmt.Fprintf(l.f, "== %s\n", footer) }

func (l *runLog) close() { l.f.Close() }

// maxQuoted bounds the engine's last line as quoted in a verdict.
const maxQuoted = 300

// lastLine is the last non-blank line the engine printed in this run, or "no output".
func (l *runLog) lastLine() string {
	end, err := l.f.Seek(0, io.SeekEnd)
	if err != nil {
		return "log unreadable: " + err.Error()
	}
	from := max(l.start, end-64<<10)
	buf := make([]byte, end-from)
	if _, err := l.readAt(buf, from); err != nil {
		return "log unreadable: " + err.Error()
	}
	buf = bytes.TrimRight(buf, " \t\r\n")
	if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
		buf = buf[i+1:]
	}
	line := string(bytes.TrimSpace(buf))
	if line == "" {
		return "no output"
	}
	if len(line) > maxQuoted {
		line = line[:maxQuoted] + "..."
	}
	return line
}

// readAt reads through a second descriptor: the log is open for appending only.
func (l *runLog) readAt(buf []byte, off int64) (int, error) {
	f, err := os.Open(l.f.Name())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.ReadAt(buf, off)
}
