/* internal.h: what the kernel sources share: the runtime include, error text, buffer checks. */
#ifndef GRETA_INTERNAL_H
#define GRETA_INTERNAL_H

#if defined(__HIP_PLATFORM_NVIDIA__)
#include "hip_nvidia.h"
#define GRETA_PLATFORM "cuda"
#else
#include <hip/hip_runtime.h>
#define GRETA_PLATFORM "hip"
#endif

#include <stdint.h>

#include "greta_kernels.h"

namespace greta {

/* Block width of every row reduction. Fixed (not the wavefront size) so that the reduction
 * order, and so the bits, are the same on every device. */
constexpr int kReduceThreads = 256;

/* fail records the calling thread's last error and returns code. */
int fail(int code, const char *fmt, ...)
#if defined(__GNUC__)
	__attribute__((format(printf, 2, 3)))
#endif
	;

/* ok clears the last error and returns GRETA_OK. */
int ok();

/* ready fails with GRETA_ERR_STATE before greta_init. */
int ready(const char *fn);

/* need checks that b holds at least want elements for argument name of kernel fn. */
int need(const char *fn, const char *name, greta_buf b, uint64_t want);

/* trace_queue runs greta_sketch and greta_trace_download (greta_kernels.h); every other
 * kernel runs on the default queue. */
hipStream_t trace_queue();

/* launched checks the launch that just happened (and, with GRETA_SYNC=1, its execution). */
int launched(const char *fn);

/* blocks returns ceil(count / per) as a grid size. */
inline unsigned blocks(uint64_t count, unsigned per) { return (unsigned)((count + per - 1) / per); }

template <typename T> inline T *ptr(greta_buf b) { return reinterpret_cast<T *>((uintptr_t)b.addr); }

/* reduce_sum adds the kReduceThreads values of s in a fixed tree order and returns the
 * total to every thread. s is shared memory of kReduceThreads floats; blockDim.x must be
 * kReduceThreads. */
__device__ inline float reduce_sum(float *s, float v) {
	const int t = threadIdx.x;
	s[t] = v;
	__syncthreads();
	for (int half = kReduceThreads / 2; half > 0; half /= 2) {
		if (t < half) s[t] = s[t] + s[t + half];
		__syncthreads();
	}
	float total = s[0];
	__syncthreads();
	return total;
}

/* reduce_max is reduce_sum's twin for the maximum. */
__device__ inline float reduce_max(float *s, float v) {
	const int t = threadIdx.x;
	s[t] = v;
	__syncthreads();
	for (int half = kReduceThreads / 2; half > 0; half /= 2) {
		if (t < half) s[t] = fmaxf(s[t], s[t + half]);
		__syncthreads();
	}
	float m = s[0];
	__syncthreads();
	return m;
}

} // namespace greta

#endif /* GRETA_INTERNAL_H */
