// sketch.hip: the sums of a golden sketch (golden.SketchCoefficients), bit-identical to the CPU.
#include "internal.h"

namespace greta {

constexpr int kSketchThreads = 128; // GRETA_SKETCH_SUMS of them sum, all of them load
constexpr int kSketchTile = 48;      // elements per tile of coefficients in shared memory
constexpr int kSketchTileCoef = kSketchTile * GRETA_SKETCH_PROJ;
constexpr int kSketchLoads = kSketchTileCoef / kSketchThreads; // coefficients each thread loads
static_assert(kSketchTileCoef % kSketchThreads == 0, "a tile must split evenly over the threads");

// One term of sum K of a sketch (0: a projection, 1: the squares, 2: the absolute values),
// the product rounded before the addition.
template <int K> __device__ inline double sketch_step(double s, const float *c, int i, float xv) {
	const double x = (double)xv;
	if constexpr (K == 0) return __dadd_rn(s, __dmul_rn((double)c[i * GRETA_SKETCH_PROJ], x));
	if constexpr (K == 1) return __dadd_rn(s, __dmul_rn(x, x));
	return __dadd_rn(s, fabs(x));
}

// sketch_tile adds len terms to s in order. A full tile is unrolled, so its loads and
// products issue ahead and only the additions wait on each other.
template <int K> __device__ inline double sketch_tile(double s, const float *c, const float *xs, int len) {
	if (len == kSketchTile) {
#pragma unroll
		for (int i = 0; i < kSketchTile; i++) s = sketch_step<K>(s, c, i, xs[i]);
	} else {
		for (int i = 0; i < len; i++) s = sketch_step<K>(s, c, i, xs[i]);
	}
	return s;
}

// sketch_kernel: block r computes the sums of row r, one thread per sum. Each sum is one
// sequential chain over the row with the product rounded before the addition (explicit
// _rn intrinsics, never contracted into a fused multiply-add): the same operations in the
// same order as the CPU. A chain is only as fast as its loads arrive, so the row and its
// coefficients go through shared memory in tiles, the next tile's loads in flight while
// the chains run over the current one (two buffers, one barrier a tile).
__global__ void sketch_kernel(const float *x, int n, const float *coef, double *out) {
	__shared__ float sc[2][kSketchTileCoef];
	__shared__ float sx[2][kSketchTile];
	const int t = threadIdx.x, j = threadIdx.x;
	const float *row = x + (size_t)blockIdx.x * n;
	float rc[kSketchLoads], rx = 0.f;
	auto load = [&](int base) {
		const int len = min(kSketchTile, n - base);
		const float *c = coef + (size_t)base * GRETA_SKETCH_PROJ;
#pragma unroll
		for (int k = 0; k < kSketchLoads; k++) {
			const int e = t + k * kSketchThreads;
			rc[k] = e < len * GRETA_SKETCH_PROJ ? c[e] : 0.f;
		}
		if (t < len) rx = row[base + t];
	};
	auto store = [&](int b) {
#pragma unroll
		for (int k = 0; k < kSketchLoads; k++) sc[b][t + k * kSketchThreads] = rc[k];
		if (t < kSketchTile) sx[b][t] = rx;
	};
	double s = 0.0;
	load(0);
	store(0);
	__syncthreads();
	for (int base = 0, b = 0; base < n; base += kSketchTile, b ^= 1) {
		const int next = base + kSketchTile;
		if (next < n) load(next);
		const int len = min(kSketchTile, n - base);
		if (j < GRETA_SKETCH_PROJ) s = sketch_tile<0>(s, &sc[b][j], sx[b], len);
		else if (j == GRETA_SKETCH_PROJ) s = sketch_tile<1>(s, nullptr, sx[b], len);
		else if (j == GRETA_SKETCH_PROJ + 1) s = sketch_tile<2>(s, nullptr, sx[b], len);
		if (next < n) store(b ^ 1);
		__syncthreads();
	}
	if (j < GRETA_SKETCH_SUMS) out[(size_t)blockIdx.x * GRETA_SKETCH_SUMS + j] = s;
}

} // namespace greta

using namespace greta;

extern "C" {

int greta_sketch(greta_buf x, int nrows, int n, greta_buf coef, greta_buf out) {
	const char *fn = "sketch";
	int rc = ready(fn);
	if (!rc && nrows <= 0) rc = fail(GRETA_ERR_ARG, "%s: nrows = %d, must be positive", fn, nrows);
	if (!rc && n <= 0) rc = fail(GRETA_ERR_ARG, "%s: n = %d, must be positive", fn, n);
	if (!rc) rc = need(fn, "x", x, (uint64_t)nrows * n);
	if (!rc) rc = need(fn, "coef", coef, (uint64_t)n * GRETA_SKETCH_PROJ);
	if (!rc) rc = need(fn, "out", out, (uint64_t)nrows * GRETA_SKETCH_SUMS * 2);
	if (rc) return rc;
	sketch_kernel<<<nrows, kSketchThreads>>>(ptr<float>(x), n, ptr<float>(coef), ptr<double>(out));
	return launched(fn);
}

} // extern "C"
