//go:build rocm

package main

// The rocm build carries the GPU backend: GRETA_BACKEND=hip (the default under this tag in
// gretatest) finds it registered.
import _ "github.com/gretabisect/gretabisect/internal/hip"
