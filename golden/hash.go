package golden

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"unsafe"
)

// HashPrefix starts every hash this package writes. Hashes read from traces are compared as
// opaque strings: the seed's own sample carries a 65-digit one.
const HashPrefix = "sha256:"

// HashRow returns "sha256:<64 hex>" of row's canonical bytes (float32 little-endian), the
// hash field of a record. On little-endian machines those are the row's own bytes.
func HashRow(row []float32) string {
	h := sha256.New()
	if littleEndian && len(row) > 0 {
		h.Write(unsafe.Slice((*byte)(unsafe.Pointer(&row[0])), 4*len(row)))
	} else {
		var buf [4096]byte
		for len(row) > 0 {
			n := min(len(row), len(buf)/4)
			for i, v := range row[:n] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			h.Write(buf[:4*n])
			row = row[n:]
		}
	}
	return HashPrefix + hex.EncodeToString(h.Sum(nil))
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// NonZero returns the nz_count of row: elements that are not +0 or -0 (NaN counts).
func NonZero(row []float32) int {
	n := 0
	for _, v := range row {
		// Without a branch: the magnitude's bits are 1..0x7fffffff for everything but ±0,
		// and adding 0x7fffffff carries into bit 31 exactly then.
		n += int((math.Float32bits(v)&0x7fffffff + 0x7fffffff) >> 31)
	}
	return n
}
