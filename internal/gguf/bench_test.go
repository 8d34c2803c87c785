package gguf

import (
	"math/rand/v2"
	"os"
	"testing"
)

// BenchmarkDequantize reports throughput in MB/s of encoded input and in million elements
// per second.
func BenchmarkDequantize(b *testing.B) {
	const n = 1 << 20
	r := rand.New(rand.NewPCG(3, 4))
	for _, typ := range []Type{F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K} {
		b.Run(typ.String(), func(b *testing.B) {
			size, err := typ.RowBytes(n)
			if err != nil {
				b.Fatal(err)
			}
			src := make([]byte, size)
			for i := range src {
				src[i] = byte(r.Uint32())
			}
			dst := make([]float32, n)
			b.SetBytes(int64(size))
			for b.Loop() {
				if err := Dequantize(typ, src, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
		})
	}
}

func BenchmarkQuantize(b *testing.B) {
	const n = 1 << 20
	r := rand.New(rand.NewPCG(5, 6))
	src := make([]float32, n)
	for i := range src {
		src[i] = float32(r.NormFloat64())
	}
	for _, typ := range []Type{F16, BF16, Q8_0, Q4_K} {
		b.Run(typ.String(), func(b *testing.B) {
			size, _ := typ.RowBytes(n)
			dst := make([]byte, size)
			b.SetBytes(4 * n)
			for b.Loop() {
				if err := Quantize(typ, src, dst); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "Melem/s")
		})
	}
}

// BenchmarkParseVocab parses the real 32000-token Llama vocabulary (722 KB, 22 keys).
func BenchmarkParseVocab(b *testing.B) {
	data, err := os.ReadFile(vocabPath(b))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(data); err != nil {
			b.Fatal(err)
		}
	}
}
