//go:build rocm

package gretatest

import _ "github.com/gretabisect/gretabisect/internal/hip" // registers the "hip" backend

// defaultBackend is the backend under test when neither Backend nor GRETA_BACKEND says: a
// rocm build runs on the GPU.
const defaultBackend = "hip"
