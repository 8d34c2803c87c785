// sketch.hip: the sums of a golden sketch (golden.SketchCoefficients), bit-identical to the CPU.
#include "internal.h"

namespace greta {

// Each row's sums are split over kSketchGroups blocks: one per kSketchGroup projections,
// then one for the two norms. A chain waits on its operands, and the fewer coefficients a
// block stages per element, the more elements it can keep in flight.
constexpr int kSketchGroup = 16;
constexpr int kSketchGroups = GRETA_SKETCH_PROJ / kSketchGroup + 1;
static_assert(GRETA_SKETCH_PROJ % kSketchGroup == 0, "the projections split into whole groups");
constexpr int kSketchThreads = 128; // kSketchGroup of them sum, all of them load
constexpr int kSketchTile = 128;    // elements per tile in shared memory
constexpr int kSketchTileCoef = kSketchTile * kSketchGroup;
constexpr int kSketchLoads = kSketchTileCoef / kSketchThreads; // coefficients each thread loads
static_assert(kSketchTileCoef % kSketchThreads == 0, "a tile must split evenly over the threads");
static_assert(kSketchTile <= kSketchThreads, "one thread loads each element of the row");

// sketch_term is term i of sum K of a sketch (0: a projection, 1: the squares, 2: the
// absolute values), rounded before it is added.
template <int K> __device__ inline double sketch_term(const double *c, int i, double x) {
	if constexpr (K == 0) return __dmul_rn(c[i * kSketchGroup], x);
	if constexpr (K == 1) return __dmul_rn(x, x);
	return fabs(x);
}

// sketch_tile adds len terms to s in order; a full tile is unrolled so that its loads and
// products issue ahead and only the additions wait on each other.
template <int K> __device__ inline double sketch_tile(double s, const double *c, const double *xs, int len) {
	if (len == kSketchTile) {
#pragma unroll
		for (int i = 0; i < kSketchTile; i++) s = __dadd_rn(s, sketch_term<K>(c, i, xs[i]));
	} else {
		for (int i = 0; i < len; i++) s = __dadd_rn(s, sketch_term<K>(c, i, xs[i]));
	}
	return s;
}

// sketch_kernel: block (r*kSketchGroups + g) computes sums g*kSketchGroup.. of row r (the
// last group: the sum of squares and of absolute values), one thread per sum. Each sum is
// one sequential chain over the row with the product rounded before the addition (explicit
// _rn intrinsics, never contracted into a fused multiply-add): the same operations in the
// same order as the CPU. The row and the group's coefficients go through shared memory in
// tiles, already in double (a conversion in the chain's loop costs more than the
// addition), the next tile's loads in flight while the chains run over the current one
// (two buffers, one barrier a tile).
__global__ void sketch_kernel(const float *x, int n, const double *coef, double *out) {
	__shared__ double sc[2][kSketchTileCoef];
	__shared__ double sx[2][kSketchTile];
	const int t = threadIdx.x;
	const int r = blockIdx.x / kSketchGroups, g = blockIdx.x % kSketchGroups;
	const bool norms = g == kSketchGroups - 1;
	const float *row = x + (size_t)r * n;
	double rc[kSketchLoads];
	float rx = 0.f;
	auto load = [&](int base) {
		const int len = min(kSketchTile, n - base);
		if (!norms) {
			const double *c = coef + (size_t)base * GRETA_SKETCH_PROJ + g * kSketchGroup;
#pragma unroll
			for (int k = 0; k < kSketchLoads; k++) {
				const int e = t + k * kSketchThreads, i = e / kSketchGroup;
				rc[k] = i < len ? c[(size_t)i * GRETA_SKETCH_PROJ + e % kSketchGroup] : 0.0;
			}
		}
		if (t < len) rx = row[base + t];
	};
	auto store = [&](int b) {
		if (!norms) {
#pragma unroll
			for (int k = 0; k < kSketchLoads; k++) sc[b][t + k * kSketchThreads] = rc[k];
		}
		if (t < kSketchTile) sx[b][t] = (double)rx;
	};
	double s = 0.0;
	load(0);
	store(0);
	__syncthreads();
	for (int base = 0, b = 0; base < n; base += kSketchTile, b ^= 1) {
		const int next = base + kSketchTile;
		if (next < n) load(next);
		const int len = min(kSketchTile, n - base);
		if (!norms && t < kSketchGroup) s = sketch_tile<0>(s, &sc[b][t], sx[b], len);
		else if (norms && t == 0) s = sketch_tile<1>(s, nullptr, sx[b], len);
		else if (norms && t == 1) s = sketch_tile<2>(s, nullptr, sx[b], len);
		if (next < n) store(b ^ 1);
		__syncthreads();
	}
	if (t < (norms ? 2 : kSketchGroup)) out[(size_t)r * GRETA_SKETCH_SUMS + g * kSketchGroup + t] = s;
}

} // namespace greta

using namespace greta;

extern "C" {

int greta_sketch(greta_buf x, int nrows, int n, greta_buf coef, greta_buf out) {
	const char *fn = "sketch";
	int rc = ready(fn);
	if (!rc && nrows <= 0) rc = fail(GRETA_ERR_ARG, "%s: nrows = %d, must be positive", fn, nrows);
	if (!rc && nrows > 65535) rc = fail(GRETA_ERR_ARG, "%s: nrows = %d rows, at most 65535 per launch", fn, nrows);
	if (!rc && n <= 0) rc = fail(GRETA_ERR_ARG, "%s: n = %d, must be positive", fn, n);
	if (!rc) rc = need(fn, "x", x, (uint64_t)nrows * n);
	if (!rc) rc = need(fn, "coef", coef, (uint64_t)n * GRETA_SKETCH_PROJ * 2);
	if (!rc) rc = need(fn, "out", out, (uint64_t)nrows * GRETA_SKETCH_SUMS * 2);
	if (rc) return rc;
	sketch_kernel<<<nrows * kSketchGroups, kSketchThreads, 0, trace_queue()>>>(ptr<float>(x), n, ptr<double>(coef), ptr<double>(out));
	return launched(fn);
}

} // extern "C"
