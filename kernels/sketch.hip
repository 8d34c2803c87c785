// sketch.hip: the sums of a golden sketch (golden.SketchCoefficients), bit-identical to the CPU.
#include "internal.h"

namespace greta {

// Each row's sums are split over kSketchGroups groups: one per kSketchGroup projections,
// then one for the two norms. A block computes one group for kSketchRows rows, which share
// each coefficient tile it stages: a traced layer's rows read the coefficients once per
// kSketchRows rows, not once per row, which keeps the sketches' memory traffic out of the
// forward pass's way.
constexpr int kSketchGroup = 16;
constexpr int kSketchGroups = GRETA_SKETCH_PROJ / kSketchGroup + 1;
static_assert(GRETA_SKETCH_PROJ % kSketchGroup == 0, "the projections split into whole groups");
constexpr int kSketchRows = 8;
constexpr int kSketchThreads = kSketchRows * kSketchGroup; // one per chain of a projection group
constexpr int kSketchTile = 128;                           // elements per tile in shared memory
constexpr int kSketchTileCoef = kSketchTile * kSketchGroup;
constexpr int kSketchLoads = kSketchTileCoef / kSketchThreads;            // coefficients each thread loads
constexpr int kSketchXLoads = kSketchTile * kSketchRows / kSketchThreads; // row elements each thread loads
static_assert(kSketchTileCoef % kSketchThreads == 0, "a coefficient tile must split evenly over the threads");
static_assert(kSketchTile == kSketchThreads, "thread t loads element t of each row's tile");

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

// sketch_kernel: block (b*kSketchGroups + g) computes sums g*kSketchGroup.. (the last
// group: the sum of squares and of absolute values) of rows b*kSketchRows.., one thread per
// sum and row. Each sum is one sequential chain over the row with the product rounded
// before the addition (explicit _rn intrinsics, never contracted into a fused
// multiply-add): the same operations in the same order as the CPU. The rows and the
// group's coefficients go through shared memory in tiles, already in double (a conversion
// in the chain's loop costs more than the addition), the next tile's loads in flight while
// the chains run over the current one (two buffers, one barrier a tile).
__global__ void sketch_kernel(const float *x, int nrows, int n, const double *coef, double *out) {
	__shared__ double sc[2][kSketchTileCoef];
	__shared__ double sx[2][kSketchRows][kSketchTile];
	const int t = threadIdx.x;
	const int r0 = blockIdx.x / kSketchGroups * kSketchRows, g = blockIdx.x % kSketchGroups;
	const bool norms = g == kSketchGroups - 1;
	// This thread's chain: row r0+row, sum k of the group (of the norms: 0 squares, 1 absolute values).
	const int row = norms ? t / 2 : t / kSketchGroup, k = norms ? t % 2 : t % kSketchGroup;
	const bool sums = row < kSketchRows && r0 + row < nrows;
	double rc[kSketchLoads];
	float rx[kSketchXLoads];
	auto load = [&](int base) {
		const int len = min(kSketchTile, n - base);
		if (!norms) {
			const double *c = coef + (size_t)base * GRETA_SKETCH_PROJ + g * kSketchGroup;
#pragma unroll
			for (int j = 0; j < kSketchLoads; j++) {
				const int e = t + j * kSketchThreads, i = e / kSketchGroup;
				rc[j] = i < len ? c[(size_t)i * GRETA_SKETCH_PROJ + e % kSketchGroup] : 0.0;
			}
		}
#pragma unroll
		for (int j = 0; j < kSketchXLoads; j++)
			rx[j] = t < len && r0 + j < nrows ? x[(size_t)(r0 + j) * n + base + t] : 0.f;
	};
	auto store = [&](int b) {
		if (!norms) {
#pragma unroll
			for (int j = 0; j < kSketchLoads; j++) sc[b][t + j * kSketchThreads] = rc[j];
		}
#pragma unroll
		for (int j = 0; j < kSketchXLoads; j++) sx[b][j][t] = (double)rx[j];
	};
	double s = 0.0;
	load(0);
	store(0);
	__syncthreads();
	for (int base = 0, b = 0; base < n; base += kSketchTile, b ^= 1) {
		const int next = base + kSketchTile;
		if (next < n) load(next);
		const int len = min(kSketchTile, n - base);
		if (sums && !norms) s = sketch_tile<0>(s, &sc[b][k], sx[b][row], len);
		else if (sums && k == 0) s = sketch_tile<1>(s, nullptr, sx[b][row], len);
		else if (sums) s = sketch_tile<2>(s, nullptr, sx[b][row], len);
		if (next < n) store(b ^ 1);
		__syncthreads();
	}
	if (sums) out[(size_t)(r0 + row) * GRETA_SKETCH_SUMS + g * kSketchGroup + k] = s;
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
	const unsigned grid = blocks(nrows, kSketchRows) * kSketchGroups;
	sketch_kernel<<<grid, kSketchThreads, 0, trace_queue()>>>(ptr<float>(x), nrows, n, ptr<double>(coef),
	                                                        ptr<double>(out));
	return launched(fn);
}

} // extern "C"
