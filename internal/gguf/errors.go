package gguf

import (
	"errors"
	"fmt"
)

// Sentinel causes a FormatError may wrap; test with errors.Is.
var (
	ErrTruncated          = errors.New("truncated")
	ErrNotGGUF            = errors.New("not a GGUF file")
	ErrUnsupportedVersion = errors.New("unsupported GGUF version")
	// ErrNotFound is returned by File's getters for a key the file does not hold.
	ErrNotFound = errors.New("not found")
)

// FormatError is the refusal of a malformed file: what is wrong, with which key or tensor,
// and the byte offset of the offending field.
type FormatError struct {
	Path    string // the file, when opened by path
	Subject string // "header", `key "general.alignment"`, `tensor "blk.0.attn_q.weight"`
	Msg     string // what is wrong, naming the field
	Offset  uint64 // byte offset of the offending field in the file
	Err     error  // ErrTruncated, ErrNotGGUF, ErrUnsupportedVersion or nil
}

func (e *FormatError) Error() string {
	path := ""
	if e.Path != "" {
		path = e.Path + ": "
	}
	return fmt.Sprintf("gguf: %s%s: %s at byte %d", path, e.Subject, e.Msg, e.Offset)
}

func (e *FormatError) Unwrap() error { return e.Err }
