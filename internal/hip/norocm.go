//go:build !rocm

package hip

// Available reports whether this binary holds the HIP backend (built with -tags rocm).
const Available = false
