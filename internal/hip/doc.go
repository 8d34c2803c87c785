// Package hip is the GPU backend: the same forward pass as the CPU reference, for both of
// its architectures (llama with optional RoPE frequency factors and linear scaling, qwen2
// with NEOX RoPE and q/k/v biases; tied output for either), run by the kernels of kernels/
// (HIP C++ behind a C ABI, libgreta_kernels.so) through cgo. It is built only with the rocm
// build tag; without it the package holds no engine and Available is false.
//
// The Go side links only libgreta_kernels.so and never calls the GPU runtime itself, so one
// binary runs over the AMD build of the library (hipcc, MI300X) or the NVIDIA build (nvcc
// through kernels/hip_nvidia.h), whichever LD_LIBRARY_PATH finds first.
//
// Importing the package under the rocm tag registers the engine as "hip" with
// gretatest/engine. The device is chosen by the GPU runtime's visibility variable
// (HIP_VISIBLE_DEVICES or CUDA_VISIBLE_DEVICES) and then by GRETA_DEVICE, an index among the
// visible devices (default 0). GRETA_SYNC=1 makes every kernel launch wait for the device,
// so an execution fault is reported by the kernel that caused it.
package hip

import "github.com/gretabisect/gretabisect/gretatest/engine"

// ErrNoDevice is returned (wrapped) when no usable GPU is visible. It is engine.ErrNoDevice,
// so callers that only know the engine registry can skip on it too.
var ErrNoDevice = engine.ErrNoDevice

// Name is the backend's name in the engine registry.
const Name = "hip"

// EnvDevice selects the device index among the visible ones.
const EnvDevice = "GRETA_DEVICE"
