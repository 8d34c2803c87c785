//go:build rocm

package gretatest

import _ "github.com/gretabisect/gretabisect/internal/hip" // registers the "hip" backend, the default under rocm
