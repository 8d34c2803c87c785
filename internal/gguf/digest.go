package gguf

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// SHA256 returns the hex SHA-256 of the whole file image: what a golden trace's manifest
// records as the model it was made with.
func (f *File) SHA256() string {
	sum := sha256.Sum256(f.data)
	return hex.EncodeToString(sum[:])
}

// KVDigest returns the hex SHA-256 of the metadata whose keys start with prefix, in GGUF
// encoding (key, type, value) in file order. With "tokenizer." it identifies a vocabulary
// whatever the weights: tokens, scores, types, merges, special ids and flags alike.
func (f *File) KVDigest(prefix string) (string, error) {
	h := sha256.New()
	var b []byte
	for _, kv := range f.KVs {
		if !strings.HasPrefix(kv.Key, prefix) {
			continue
		}
		b = appendString(b[:0], kv.Key)
		b = le.AppendUint32(b, uint32(kv.Value.typ))
		var err error
		if b, err = appendValue(b, kv.Value, 0); err != nil {
			return "", err
		}
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
