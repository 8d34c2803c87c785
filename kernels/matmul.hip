// matmul.hip: Y = X W^T for prefill (tiled) and decode (one pass over W).
#include "internal.h"

namespace greta {

constexpr int kMaxSegs = 3;

// Segs routes output columns: column j belongs to segment s with start[s] <= j < start[s+1]
// and lands at p[s][row*ld[s] + j - start[s]], plus bias[s][j - start[s]] when the segment
// has a bias (nullptr: none).
struct Segs {
	float *p[kMaxSegs];
	const float *bias[kMaxSegs];
	int ld[kMaxSegs];
	int start[kMaxSegs + 1];
};

__device__ inline void store(const Segs &sg, int row, int col, float v) {
	int s = 0;
	while (s + 1 < kMaxSegs && col >= sg.start[s + 1]) s++;
	const int c = col - sg.start[s];
	// A separate rounded addition after the finished sum: the CPU adds the bias to the
	// product's result the same way, so a bias never joins the dot product's chain.
	if (sg.bias[s]) v = __fadd_rn(v, sg.bias[s][c]);
	sg.p[s][(size_t)row * sg.ld[s] + c] = v;
}

// Tiled product: a block computes a kBM x kBN tile of Y with kThreads threads, each an 8x8
// sub-tile (rows ty*4+{0..3} and kHalfM+ty*4+{0..3}, columns likewise with tx). K advances in
// steps of kBK through double-buffered shared memory; every output sums k in ascending
// order in one accumulator, whatever the tile it falls in.
constexpr int kBM = 128, kBN = 128, kBK = 8, kThreads = 256, kPad = 4;
constexpr int kHalfM = kBM / 2, kHalfN = kBN / 2; // a thread's two 4-wide strips start ty*4 and kHalf+ty*4

template <bool VEC>
__device__ inline void load_tile(const float *src, int rows, int k, int r0, int k0, float (&v)[4]) {
	const int t = threadIdx.x;
	const int r = r0 + t / 2, c = k0 + (t % 2) * 4;
	if (VEC) {
		if (r < rows && c < k) {
			const float4 q = *reinterpret_cast<const float4 *>(src + (size_t)r * k + c);
			v[0] = q.x, v[1] = q.y, v[2] = q.z, v[3] = q.w;
		} else {
			v[0] = v[1] = v[2] = v[3] = 0.f;
		}
	} else {
#pragma unroll
		for (int i = 0; i < 4; i++) v[i] = (r < rows && c + i < k) ? src[(size_t)r * k + c + i] : 0.f;
	}
}

__device__ inline void store_tile(float (*s)[kBM + kPad], const float (&v)[4]) {
	const int t = threadIdx.x;
	const int r = t / 2, c = (t % 2) * 4;
#pragma unroll
	for (int i = 0; i < 4; i++) s[c + i][r] = v[i];
}

template <bool VEC>
__global__ void __launch_bounds__(kThreads, 2)
	matmul_kernel(const float *__restrict__ x, const float *__restrict__ w, int m, int n, int k, Segs sg) {
	__shared__ __align__(16) float As[2][kBK][kBM + kPad];
	__shared__ __align__(16) float Bs[2][kBK][kBN + kPad];
	const int m0 = blockIdx.y * kBM, n0 = blockIdx.x * kBN;
	const int tx = threadIdx.x % 16, ty = threadIdx.x / 16;

	float acc[8][8];
#pragma unroll
	for (int i = 0; i < 8; i++)
#pragma unroll
		for (int j = 0; j < 8; j++) acc[i][j] = 0.f;

	float ra[4], rb[4];
	load_tile<VEC>(x, m, k, m0, 0, ra);
	load_tile<VEC>(w, n, k, n0, 0, rb);
	store_tile(As[0], ra);
	store_tile(Bs[0], rb);
	__syncthreads();

	const int nk = (k + kBK - 1) / kBK;
	int cur = 0;
	for (int kt = 0; kt < nk; kt++) {
		const bool more = kt + 1 < nk;
		if (more) {
			load_tile<VEC>(x, m, k, m0, (kt + 1) * kBK, ra);
			load_tile<VEC>(w, n, k, n0, (kt + 1) * kBK, rb);
		}
#pragma unroll
		for (int kk = 0; kk < kBK; kk++) {
			float a[8], b[8];
			const float4 a0 = *reinterpret_cast<const float4 *>(&As[cur][kk][ty * 4]);
			const float4 a1 = *reinterpret_cast<const float4 *>(&As[cur][kk][kHalfM + ty * 4]);
			const float4 b0 = *reinterpret_cast<const float4 *>(&Bs[cur][kk][tx * 4]);
			const float4 b1 = *reinterpret_cast<const float4 *>(&Bs[cur][kk][kHalfN + tx * 4]);
			a[0] = a0.x, a[1] = a0.y, a[2] = a0.z, a[3] = a0.w, a[4] = a1.x, a[5] = a1.y, a[6] = a1.z, a[7] = a1.w;
			b[0] = b0.x, b[1] = b0.y, b[2] = b0.z, b[3] = b0.w, b[4] = b1.x, b[5] = b1.y, b[6] = b1.z, b[7] = b1.w;
#pragma unroll
			for (int i = 0; i < 8; i++)
#pragma unroll
				for (int j = 0; j < 8; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
		}
		if (more) {
			store_tile(As[cur ^ 1], ra);
			store_tile(Bs[cur ^ 1], rb);
		}
		__syncthreads();
		cur ^= 1;
	}

#pragma unroll
	for (int i = 0; i < 8; i++) {
		const int row = m0 + (i < 4 ? ty * 4 + i : kHalfM + ty * 4 + i - 4);
		if (row >= m) continue;
#pragma unroll
		for (int j = 0; j < 8; j++) {
			const int col = n0 + (j < 4 ? tx * 4 + j : kHalfN + tx * 4 + j - 4);
			if (col < n) store(sg, row, col, acc[i][j]);
		}
	}
}

// Few-row product: kMVGroups groups of kMVLanes threads, one output column per group; each
// lane sums a fixed stride of k, then the lanes combine in a fixed tree.
constexpr int kMVLanes = 64, kMVGroups = kReduceThreads / kMVLanes;

template <int M, bool VEC>
__global__ void __launch_bounds__(kReduceThreads)
	matvec_kernel(const float *__restrict__ x, const float *__restrict__ w, int n, int k, Segs sg) {
	__shared__ float s[kMVGroups][M][kMVLanes];
	const int g = threadIdx.x / kMVLanes, lane = threadIdx.x % kMVLanes;
	const int col = blockIdx.x * kMVGroups + g;
	float acc[M];
#pragma unroll
	for (int r = 0; r < M; r++) acc[r] = 0.f;
	if (col < n) {
		const float *wr = w + (size_t)col * k;
		if (VEC) {
			const int k4 = k / 4;
#pragma unroll 4
			for (int c = lane; c < k4; c += kMVLanes) {
				const float4 wv = reinterpret_cast<const float4 *>(wr)[c];
#pragma unroll
				for (int r = 0; r < M; r++) {
					const float4 xv = reinterpret_cast<const float4 *>(x + (size_t)r * k)[c];
					acc[r] = fmaf(wv.x, xv.x, acc[r]);
					acc[r] = fmaf(wv.y, xv.y, acc[r]);
					acc[r] = fmaf(wv.z, xv.z, acc[r]);
					acc[r] = fmaf(wv.w, xv.w, acc[r]);
				}
			}
		} else {
			for (int c = lane; c < k; c += kMVLanes) {
				const float wv = wr[c];
#pragma unroll
				for (int r = 0; r < M; r++) acc[r] = fmaf(wv, x[(size_t)r * k + c], acc[r]);
			}
		}
	}
#pragma unroll
	for (int r = 0; r < M; r++) s[g][r][lane] = acc[r];
	__syncthreads();
	for (int half = kMVLanes / 2; half > 0; half /= 2) {
		if (lane < half)
#pragma unroll
			for (int r = 0; r < M; r++) s[g][r][lane] = s[g][r][lane] + s[g][r][lane + half];
		__syncthreads();
	}
	if (lane < M && col < n) store(sg, lane, col, s[g][lane][0]);
}

static bool aligned16(greta_buf b) { return b.addr % 16 == 0; }

// prepare checks the operands and the output segments of a product and fills sg.
static int prepare(const char *fn, greta_buf x, int m, int k, greta_buf w, int n, const greta_seg *segs, int nsegs,
                   Segs *sg) {
	int rc = ready(fn);
	if (rc) return rc;
	if (m <= 0 || k <= 0 || n <= 0) return fail(GRETA_ERR_ARG, "%s: m=%d k=%d n=%d must be positive", fn, m, k, n);
	if (nsegs < 1 || nsegs > kMaxSegs || segs == nullptr)
		return fail(GRETA_ERR_ARG, "%s: %d output segments, want 1 to %d", fn, nsegs, kMaxSegs);
	if ((rc = need(fn, "x", x, (uint64_t)m * k)) || (rc = need(fn, "w", w, (uint64_t)n * k))) return rc;
	int start = 0;
	for (int s = 0; s < kMaxSegs; s++) {
		sg->start[s] = start;
		if (s >= nsegs) {
			sg->p[s] = sg->p[s - 1];
			sg->bias[s] = sg->bias[s - 1];
			sg->ld[s] = sg->ld[s - 1];
			continue;
		}
		const greta_seg &g = segs[s];
		if (g.cols <= 0 || g.ld < g.cols)
			return fail(GRETA_ERR_ARG, "%s: segment %d: cols=%d ld=%d (want 0 < cols <= ld)", fn, s, g.cols, g.ld);
		if ((rc = need(fn, "output segment", g.buf, (uint64_t)(m - 1) * g.ld + g.cols))) return rc;
		if (g.bias.addr != 0 && (rc = need(fn, "segment bias", g.bias, (uint64_t)g.cols))) return rc;
		sg->p[s] = ptr<float>(g.buf);
		sg->bias[s] = g.bias.addr != 0 ? ptr<const float>(g.bias) : nullptr;
		sg->ld[s] = g.ld;
		start += g.cols;
	}
	sg->start[kMaxSegs] = start;
	for (int s = nsegs; s < kMaxSegs; s++) sg->start[s] = start;
	if (start != n) return fail(GRETA_ERR_ARG, "%s: output segments cover %d columns, w has %d rows", fn, start, n);
	return GRETA_OK;
}

template <int M>
static void matvec_launch(bool vec, const float *x, const float *w, int n, int k, const Segs &sg) {
	const unsigned grid = blocks(n, kMVGroups);
	if (vec)
		matvec_kernel<M, true><<<grid, kReduceThreads>>>(x, w, n, k, sg);
	else
		matvec_kernel<M, false><<<grid, kReduceThreads>>>(x, w, n, k, sg);
}

} // namespace greta

using namespace greta;

extern "C" {

int greta_matmul(greta_buf x, int m, int k, greta_buf w, int n, const greta_seg *segs, int nsegs) {
	const char *fn = "matmul";
	Segs sg;
	int rc = prepare(fn, x, m, k, w, n, segs, nsegs, &sg);
	if (rc) return rc;
	const dim3 grid(blocks(n, kBN), blocks(m, kBM));
	if (k % 4 == 0 && aligned16(x) && aligned16(w))
		matmul_kernel<true><<<grid, kThreads>>>(ptr<float>(x), ptr<float>(w), m, n, k, sg);
	else
		matmul_kernel<false><<<grid, kThreads>>>(ptr<float>(x), ptr<float>(w), m, n, k, sg);
	return launched(fn);
}

int greta_matvec(greta_buf x, int m, int k, greta_buf w, int n, const greta_seg *segs, int nsegs) {
	const char *fn = "matvec";
	Segs sg;
	int rc = prepare(fn, x, m, k, w, n, segs, nsegs, &sg);
	if (rc) return rc;
	if (m > GRETA_MATVEC_MAX_ROWS)
		return fail(GRETA_ERR_ARG, "%s: m=%d rows, at most %d", fn, m, GRETA_MATVEC_MAX_ROWS);
	const bool vec = k % 4 == 0 && aligned16(x) && aligned16(w);
	const float *xp = ptr<float>(x), *wp = ptr<float>(w);
	switch (m) {
	case 1: matvec_launch<1>(vec, xp, wp, n, k, sg); break;
	case 2: matvec_launch<2>(vec, xp, wp, n, k, sg); break;
	case 3: matvec_launch<3>(vec, xp, wp, n, k, sg); break;
	default: matvec_launch<4>(vec, xp, wp, n, k, sg); break;
	}
	return launched(fn);
}

} // extern "C"
