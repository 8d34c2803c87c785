//go:build !rocm

package gretatest

// defaultBackend is the backend under test when neither Backend nor GRETA_BACKEND says.
const defaultBackend = "cpu"
