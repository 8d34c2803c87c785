package golden

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
)

// requiredFields are the fields without which a record cannot be matched or compared. Other
// seed fields default to their zero value: external engines' traces vary in what they fill in.
var requiredFields = []string{"prompt_id", "pos_id", "layer", "tensor_name", "hash"}

// MarshalJSON writes the seed fields in the order of ARCHITECTURE.md section 4 (top5_tokens
// only when set), then the extensions that are set, then Extra in sorted key order.
func (r Record) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.Grow(512)
	w := objWriter{b: &b}
	b.WriteByte('{')
	w.str("prompt_id", r.PromptID)
	w.int("token_id", r.TokenID)
	w.int("pos_id", r.PosID)
	w.int("logical_tok_idx", r.LogicalTokIdx)
	w.str("phase", r.Phase)
	w.int("layer", r.Layer)
	w.str("tensor_name", r.TensorName)
	w.str("route", r.Route)
	w.str("timestamp", r.Timestamp)
	w.str("git_commit_hash", r.GitCommitHash)
	w.str("hash", r.Hash)
	w.int("nz_count", r.NZCount)
	if r.Top5Tokens != nil {
		w.value("top5_tokens", r.Top5Tokens)
	}
	if r.Shape != nil {
		w.value("shape", r.Shape)
	}
	if r.DType != "" {
		w.str("dtype", r.DType)
	}
	if r.Sketch != nil {
		w.value("sketch", r.Sketch)
	}
	if r.RawFile != "" {
		w.str("raw_file", r.RawFile)
	}
	keys := make([]string, 0, len(r.Extra))
	for k := range r.Extra {
		if !knownField(k) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	for _, k := range keys {
		w.key(k)
		if err := json.Compact(&b, r.Extra[k]); err != nil {
			return nil, fmt.Errorf("record field %q: %w", k, err)
		}
	}
	if w.err != nil {
		return nil, w.err
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// objWriter appends "key":value pairs to a JSON object under construction.
type objWriter struct {
	b   *bytes.Buffer
	n   int
	err error
}

func (w *objWriter) key(k string) {
	if w.n > 0 {
		w.b.WriteByte(',')
	}
	w.n++
	w.b.Write(strconv.AppendQuote(nil, k))
	w.b.WriteByte(':')
}

func (w *objWriter) str(k, v string) {
	w.key(k)
	enc, _ := json.Marshal(v) // a string always marshals
	w.b.Write(enc)
}

func (w *objWriter) int(k string, v int) {
	w.key(k)
	w.b.Write(strconv.AppendInt(nil, int64(v), 10))
}

func (w *objWriter) value(k string, v any) {
	w.key(k)
	enc, err := json.Marshal(v)
	if err != nil && w.err == nil {
		w.err = fmt.Errorf("record field %q: %w", k, err)
	}
	w.b.Write(enc)
}

// UnmarshalJSON reads one record. Unknown fields go to Extra; the key fields and the hash
// are required. A timestamp written as a JSON number is kept as its decimal text.
func (r *Record) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		return errors.New("record is null, want an object")
	}
	for _, k := range requiredFields {
		if _, ok := raw[k]; !ok {
			return fmt.Errorf("missing field %q", k)
		}
	}
	*r = Record{}
	for k, v := range raw {
		var err error
		switch k {
		case "prompt_id":
			err = json.Unmarshal(v, &r.PromptID)
		case "token_id":
			err = json.Unmarshal(v, &r.TokenID)
		case "pos_id":
			err = json.Unmarshal(v, &r.PosID)
		case "logical_tok_idx":
			err = json.Unmarshal(v, &r.LogicalTokIdx)
		case "phase":
			err = json.Unmarshal(v, &r.Phase)
		case "layer":
			err = json.Unmarshal(v, &r.Layer)
		case "tensor_name":
			err = json.Unmarshal(v, &r.TensorName)
		case "route":
			err = json.Unmarshal(v, &r.Route)
		case "timestamp":
			r.Timestamp, err = stringOrNumber(v)
		case "git_commit_hash":
			err = json.Unmarshal(v, &r.GitCommitHash)
		case "hash":
			err = json.Unmarshal(v, &r.Hash)
		case "nz_count":
			err = json.Unmarshal(v, &r.NZCount)
		case "top5_tokens":
			err = json.Unmarshal(v, &r.Top5Tokens)
		case "shape":
			err = json.Unmarshal(v, &r.Shape)
		case "dtype":
			err = json.Unmarshal(v, &r.DType)
		case "sketch":
			err = json.Unmarshal(v, &r.Sketch)
		case "raw_file":
			err = json.Unmarshal(v, &r.RawFile)
		default:
			if r.Extra == nil {
				r.Extra = make(map[string]json.RawMessage)
			}
			r.Extra[k] = append(json.RawMessage(nil), v...)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", k, fieldError(err))
		}
	}
	if r.PromptID == "" {
		return errors.New(`field "prompt_id": empty`)
	}
	if r.TensorName == "" {
		return errors.New(`field "tensor_name": empty`)
	}
	return nil
}

// knownField reports whether k is one of Record's own JSON names, which Extra must not shadow.
func knownField(k string) bool {
	switch k {
	case "prompt_id", "token_id", "pos_id", "logical_tok_idx", "phase", "layer", "tensor_name",
		"route", "timestamp", "git_commit_hash", "hash", "nz_count", "top5_tokens",
		"shape", "dtype", "sketch", "raw_file":
		return true
	}
	return false
}

func stringOrNumber(v json.RawMessage) (string, error) {
	var n json.Number
	if err := json.Unmarshal(v, &n); err == nil {
		return n.String(), nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", errors.New("want a string or a number")
	}
	return s, nil
}

// fieldError shortens encoding/json's type errors, which name Go types, to what a trace
// author needs.
func fieldError(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Errorf("got a JSON %s, want %s", te.Value, jsonKind(te.Type.Kind().String()))
	}
	return err
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int64", "float64", "float32":
		return "an integer"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "struct", "ptr":
		return "an object"
	}
	return goKind
}
