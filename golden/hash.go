package golden

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
)

// HashPrefix starts every hash this package writes. Hashes read from traces are compared as
// opaque strings: the seed's own sample carries a 65-digit one.
const HashPrefix = "sha256:"

// HashRow returns "sha256:<64 hex>" of row's canonical bytes (float32 little-endian), the
// hash field of a record.
func HashRow(row []float32) string {
	h := sha256.New()
	var buf [4096]byte
	for len(row) > 0 {
		n := min(len(row), len(buf)/4)
		for i, v := range row[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
		}
		h.Write(buf[:4*n])
		row = row[n:]
	}
	return HashPrefix + hex.EncodeToString(h.Sum(nil))
}

// NonZero returns the nz_count of row: elements that are not +0 or -0 (NaN counts).
func NonZero(row []float32) int {
	n := 0
	for _, v := range row {
		if v != 0 {
			n++
		}
	}
	return n
}
