//go:build goexperiment.simd && amd64

package ref

import (
	"fmt"
	"os"
	"slices"
	"testing"
)

// EnvKernel picks the kernels of a SIMD test binary: GRETA_REF_KERNEL=avx2 runs the AVX2
// code on an AVX-512 machine, so TestDeterminism proves it gives the same digest.
const EnvKernel = "GRETA_REF_KERNEL"

func init() {
	name := os.Getenv(EnvKernel)
	if name == "" {
		return
	}
	i := slices.Index(isaNames[:], name)
	if i < 0 || isa(i) > best {
		panic(fmt.Sprintf("%s=%s: this machine runs %v", EnvKernel, name, isaNames[:best+1]))
	}
	simd = isa(i)
}

// forEachKernel runs f with each instruction set this machine has, the portable code
// included.
func forEachKernel(t *testing.T, f func(t *testing.T)) {
	defer func(s isa) { simd = s }(simd)
	for s := isaPortable; s <= best; s++ {
		simd = s
		t.Run(isaNames[s], f)
	}
}
