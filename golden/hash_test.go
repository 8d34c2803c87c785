package golden

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"
)

// TestHashRowBytes: the hash is SHA-256 of the row as float32 little-endian, NaN payloads
// and signed zeros included, for lengths around the internal buffer's 1024 elements.
func TestHashRowBytes(t *testing.T) {
	// python3: hashlib.sha256(struct.pack('<3f', 1.0, -0.0, 2.5)).hexdigest()
	const known = "sha256:60d6c502d760a348a356a109d80444c7e88b26abfcd4aed1f6ce28d518c0fab2"
	if got := HashRow([]float32{1, float32(math.Copysign(0, -1)), 2.5}); got != known {
		t.Errorf("HashRow(1, -0, 2.5) = %s, want %s", got, known)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 3, 1023, 1024, 1025, 5000} {
		row := make([]float32, n)
		for i := range row {
			switch rng.IntN(6) {
			case 0:
				row[i] = math.Float32frombits(0x7fc00000 | rng.Uint32()&0x3fffff) // NaN payloads
			case 1:
				row[i] = float32(math.Copysign(0, -1))
			default:
				row[i] = float32(rng.NormFloat64())
			}
		}
		b := make([]byte, 4*n)
		for i, v := range row {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		sum := sha256.Sum256(b)
		if got, want := HashRow(row), HashPrefix+hex.EncodeToString(sum[:]); got != want {
			t.Errorf("n=%d: HashRow = %s, want %s", n, got, want)
		}
	}
}

// TestNonZero: everything but +0 and -0 counts, NaN and the smallest subnormals included.
func TestNonZero(t *testing.T) {
	row := []float32{0, float32(math.Copysign(0, -1)), math.Float32frombits(1), -math.Float32frombits(1),
		float32(math.NaN()), float32(math.Inf(-1)), math.MaxFloat32, -1, 0}
	if got := NonZero(row); got != 6 {
		t.Errorf("NonZero(%v) = %d, want 6", row, got)
	}
	rng := rand.New(rand.NewPCG(5, 6))
	row = make([]float32, 4097)
	want := 0
	for i := range row {
		if rng.IntN(3) > 0 {
			row[i] = math.Float32frombits(rng.Uint32())
		}
		if row[i] != 0 || math.IsNaN(float64(row[i])) {
			want++
		}
	}
	if got := NonZero(row); got != want {
		t.Errorf("NonZero of random bits = %d, want %d", got, want)
	}
}
