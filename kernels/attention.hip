// attention.hip: causal attention with grouped KV heads over one layer's KV cache.
#include <math.h>

#include "internal.h"

namespace greta {

// Prefill: a block of kBQ threads holds kBQ consecutive queries of one head, one query per
// thread, and walks the keys in ascending order through shared-memory tiles of KT keys with
// an online softmax, so each query's sum runs in the same order on every launch.
constexpr int kBQ = 64;

template <int HD>
__global__ void __launch_bounds__(kBQ)
	attn_prefill_kernel(const float *__restrict__ q, const float *__restrict__ kc, const float *__restrict__ vc,
	                    int n, int pos0, int n_head, int group, float scale, float *__restrict__ out) {
	constexpr int KT = HD <= 64 ? 64 : 4096 / HD; // 32 KB of K and V tiles at most
	__shared__ __align__(16) float Ks[KT][HD];
	__shared__ __align__(16) float Vs[KT][HD];
	const int h = blockIdx.y, kvh = h / group;
	const int kvw = (n_head / group) * HD; // row width of the cache
	const int i = blockIdx.x * kBQ + threadIdx.x;
	const bool active = i < n;
	const int qpos = pos0 + i;
	const int last = pos0 + min(n, (int)(blockIdx.x + 1) * kBQ) - 1; // the block's last key

	float qr[HD], acc[HD];
	const float *qrow = q + (size_t)(active ? i : 0) * n_head * HD + (size_t)h * HD;
#pragma unroll
	for (int d = 0; d < HD; d++) {
		qr[d] = active ? qrow[d] : 0.f;
		acc[d] = 0.f;
	}
	float mx = -INFINITY, l = 0.f;

	for (int k0 = 0; k0 <= last; k0 += KT) {
		const int nk = min(KT, last + 1 - k0);
		for (int e = threadIdx.x; e < nk * (HD / 4); e += kBQ) {
			const int j = e / (HD / 4), d4 = e % (HD / 4);
			const size_t off = (size_t)(k0 + j) * kvw + (size_t)kvh * HD;
			reinterpret_cast<float4 *>(Ks[j])[d4] = reinterpret_cast<const float4 *>(kc + off)[d4];
			reinterpret_cast<float4 *>(Vs[j])[d4] = reinterpret_cast<const float4 *>(vc + off)[d4];
		}
		__syncthreads();
		if (active) {
			const int jn = min(nk, qpos + 1 - k0);
			for (int j = 0; j < jn; j++) {
				// Four interleaved partial sums break the dependency chain; their order is fixed.
				float s4[4] = {0.f, 0.f, 0.f, 0.f};
#pragma unroll
				for (int d = 0; d < HD; d++) s4[d % 4] = fmaf(qr[d], Ks[j][d], s4[d % 4]);
				const float s = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * scale;
				if (s > mx) {
					const float corr = expf(mx - s);
					l *= corr;
#pragma unroll
					for (int d = 0; d < HD; d++) acc[d] *= corr;
					mx = s;
				}
				const float p = expf(s - mx);
				l += p;
#pragma unroll
				for (int d = 0; d < HD; d++) acc[d] = fmaf(p, Vs[j][d], acc[d]);
			}
		}
		__syncthreads();
	}
	if (active) {
		float *orow = out + (size_t)i * n_head * HD + (size_t)h * HD;
#pragma unroll
		for (int d = 0; d < HD; d++) orow[d] = acc[d] / l;
	}
}

// Decode (any head_dim): a block of kReduceThreads threads per (query, head). The scores go
// to scratch, then a fixed-order max, exponentials and sum; then the threads split into
// parts of head_dim threads, each part sums a contiguous run of keys in ascending order, and
// the parts are added in order. Dynamic shared memory: head_dim + max(kReduceThreads,
// head_dim) floats (decode_smem).
__global__ void __launch_bounds__(kReduceThreads)
	attn_decode_kernel(const float *__restrict__ q, const float *__restrict__ kc, const float *__restrict__ vc,
	                   int pos0, int n, int n_head, int group, int hd, float scale, float *__restrict__ scratch,
	                   float *__restrict__ out) {
	__shared__ float red[kReduceThreads];
	extern __shared__ float dyn[];
	float *qs = dyn, *partial = dyn + hd;
	const int i = blockIdx.x, h = blockIdx.y, kvh = h / group;
	const size_t kvw = (size_t)(n_head / group) * hd;
	const int nkeys = pos0 + i + 1;
	const float *kbase = kc + (size_t)kvh * hd, *vbase = vc + (size_t)kvh * hd;
	float *sc = scratch + ((size_t)i * n_head + h) * (size_t)(pos0 + n);
	const int t = threadIdx.x;

	for (int d = t; d < hd; d += kReduceThreads) qs[d] = q[(size_t)i * n_head * hd + (size_t)h * hd + d];
	__syncthreads();
	float mx = -INFINITY;
	for (int j = t; j < nkeys; j += kReduceThreads) {
		const float *krow = kbase + (size_t)j * kvw;
		float s4[4] = {0.f, 0.f, 0.f, 0.f};
		int d = 0;
		for (; d + 4 <= hd; d += 4)
#pragma unroll
			for (int e = 0; e < 4; e++) s4[e] = fmaf(qs[d + e], krow[d + e], s4[e]);
		for (; d < hd; d++) s4[0] = fmaf(qs[d], krow[d], s4[0]);
		const float s = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * scale;
		sc[j] = s;
		mx = fmaxf(mx, s);
	}
	mx = reduce_max(red, mx);
	float sum = 0.f;
	for (int j = t; j < nkeys; j += kReduceThreads) {
		const float p = expf(sc[j] - mx);
		sc[j] = p;
		sum += p;
	}
	const float l = reduce_sum(red, sum); // its barriers also publish sc to the block

	const int parts = hd >= kReduceThreads ? 1 : kReduceThreads / hd;
	const int part = hd >= kReduceThreads ? 0 : t / hd;
	const int chunk = (nkeys + parts - 1) / parts;
	const int j0 = part * chunk, j1 = min(nkeys, j0 + chunk);
	if (part < parts)
		for (int d = hd >= kReduceThreads ? t : t % hd; d < hd; d += kReduceThreads) {
			float acc = 0.f;
#pragma unroll 8
			for (int j = j0; j < j1; j++) acc = fmaf(sc[j], vbase[(size_t)j * kvw + d], acc);
			partial[part * hd + d] = acc;
		}
	__syncthreads();
	for (int d = t; d < hd; d += kReduceThreads) {
		float acc = partial[d];
		for (int p = 1; p < parts; p++) acc += partial[p * hd + d];
		out[(size_t)i * n_head * hd + (size_t)h * hd + d] = acc / l;
	}
}

// Split decode (head_dim a multiple of 4): the keys of a query are cut into tiles of kSplit
// positions; a block of kSplitThreads threads takes one tile for the group of query heads
// that share a KV head (so K and V are read once per group), and leaves the tile's max m,
// sum l and unnormalised context acc[head_dim] in scratch. attn_combine_kernel then merges
// the tiles of each (query, head) in ascending order. Dynamic shared memory: split_smem.
constexpr int kSplit = 64, kSplitThreads = 128, kCombineThreads = 64;

__global__ void __launch_bounds__(kSplitThreads)
	attn_split_kernel(const float *__restrict__ q, const float *__restrict__ kc, const float *__restrict__ vc,
	                  int pos0, int n_head, int group, int hd, int tiles, float scale, float *__restrict__ part) {
	extern __shared__ __align__(16) float sm[];
	float *qs = sm;                       // (group, hd)
	float *ks = qs + group * hd;          // (kSplit, hd)
	float *vs = ks + kSplit * hd;         // (kSplit, hd)
	float *ps = vs + kSplit * hd;         // (group, kSplit) scores, then probabilities
	float *ml = ps + group * kSplit;      // (group, 2) max and sum
	const int kvh = blockIdx.x, tile = blockIdx.y, i = blockIdx.z, t = threadIdx.x;
	const int kvw = (n_head / group) * hd, hd4 = hd / 4;
	const int qpos = pos0 + i, k0 = tile * kSplit;
	const int nk = max(0, min(kSplit, qpos + 1 - k0));
	const int h0 = kvh * group;

	for (int e = t; e < group * hd4; e += kSplitThreads) {
		const int g = e / hd4, d4 = e % hd4;
		reinterpret_cast<float4 *>(qs + g * hd)[d4] =
			reinterpret_cast<const float4 *>(q + (size_t)i * n_head * hd + (size_t)(h0 + g) * hd)[d4];
	}
	for (int e = t; e < nk * hd4; e += kSplitThreads) {
		const int j = e / hd4, d4 = e % hd4;
		const size_t off = (size_t)(k0 + j) * kvw + (size_t)kvh * hd;
		reinterpret_cast<float4 *>(ks + j * hd)[d4] = reinterpret_cast<const float4 *>(kc + off)[d4];
		reinterpret_cast<float4 *>(vs + j * hd)[d4] = reinterpret_cast<const float4 *>(vc + off)[d4];
	}
	__syncthreads();
	for (int e = t; e < group * nk; e += kSplitThreads) {
		const int g = e / nk, j = e % nk;
		const float *qr = qs + g * hd, *kr = ks + j * hd;
		float s4[4] = {0.f, 0.f, 0.f, 0.f};
		for (int d = 0; d < hd; d += 4)
#pragma unroll
			for (int u = 0; u < 4; u++) s4[u] = fmaf(qr[d + u], kr[d + u], s4[u]);
		ps[g * kSplit + j] = ((s4[0] + s4[1]) + (s4[2] + s4[3])) * scale;
	}
	__syncthreads();
	if (t < group) {
		float *p = ps + t * kSplit;
		float m = -INFINITY, l = 0.f;
		for (int j = 0; j < nk; j++) m = fmaxf(m, p[j]);
		for (int j = 0; j < nk; j++) {
			p[j] = expf(p[j] - m);
			l += p[j];
		}
		ml[2 * t] = m;
		ml[2 * t + 1] = l;
	}
	__syncthreads();
	for (int e = t; e < group * hd; e += kSplitThreads) {
		const int g = e / hd, d = e % hd;
		const float *p = ps + g * kSplit;
		float acc = 0.f;
		for (int j = 0; j < nk; j++) acc = fmaf(p[j], vs[j * hd + d], acc);
		float *o = part + (((size_t)i * n_head + h0 + g) * tiles + tile) * (size_t)(hd + 2);
		o[2 + d] = acc;
		if (d == 0) {
			o[0] = ml[2 * g];
			o[1] = ml[2 * g + 1];
		}
	}
}

__global__ void attn_combine_kernel(const float *__restrict__ part, int pos0, int n_head, int hd, int tiles,
                                    float *__restrict__ out) {
	const int i = blockIdx.x, h = blockIdx.y;
	const int used = (pos0 + i) / kSplit + 1; // tiles holding keys of this query
	const float *p = part + ((size_t)i * n_head + h) * tiles * (size_t)(hd + 2);
	float m = -INFINITY;
	for (int s = 0; s < used; s++) m = fmaxf(m, p[s * (hd + 2)]);
	float l = 0.f;
	for (int s = 0; s < used; s++) l += expf(p[s * (hd + 2)] - m) * p[s * (hd + 2) + 1];
	for (int d = threadIdx.x; d < hd; d += blockDim.x) {
		float acc = 0.f;
		for (int s = 0; s < used; s++) acc = fmaf(expf(p[s * (hd + 2)] - m), p[s * (hd + 2) + 2 + d], acc);
		out[(size_t)i * n_head * hd + (size_t)h * hd + d] = acc / l;
	}
}

static size_t split_smem(int hd, int group) {
	return sizeof(float) * ((size_t)group * hd + 2 * (size_t)kSplit * hd + (size_t)group * kSplit + 2 * (size_t)group);
}

static size_t decode_smem(int hd) { return sizeof(float) * ((size_t)hd + (hd > kReduceThreads ? hd : kReduceThreads)); }

static int check(const char *fn, greta_buf q, greta_buf kc, greta_buf vc, int n, int pos0, int n_head, int n_head_kv,
                 int head_dim, greta_buf out) {
	int rc = ready(fn);
	if (rc) return rc;
	if (n <= 0 || pos0 < 0 || n_head <= 0 || n_head_kv <= 0 || head_dim <= 0)
		return fail(GRETA_ERR_ARG, "%s: n=%d pos0=%d n_head=%d n_head_kv=%d head_dim=%d out of range", fn, n, pos0,
		            n_head, n_head_kv, head_dim);
	if (n_head % n_head_kv != 0)
		return fail(GRETA_ERR_ARG, "%s: n_head %d is not a multiple of n_head_kv %d", fn, n_head, n_head_kv);
	if (n > 65535 || n_head > 65535) // grid y and z limits
		return fail(GRETA_ERR_ARG, "%s: n=%d n_head=%d: at most 65535 each per launch", fn, n, n_head);
	const uint64_t qw = (uint64_t)n_head * head_dim, kvw = (uint64_t)n_head_kv * head_dim;
	const uint64_t keys = (uint64_t)pos0 + n;
	if ((rc = need(fn, "q", q, n * qw)) || (rc = need(fn, "k cache", kc, keys * kvw)) ||
	    (rc = need(fn, "v cache", vc, keys * kvw)) || (rc = need(fn, "out", out, n * qw)))
		return rc;
	return GRETA_OK;
}

static float attn_scale(int head_dim) { return (float)(1.0 / sqrt((double)head_dim)); }

} // namespace greta

using namespace greta;

extern "C" {

int greta_attention_prefill(greta_buf q, greta_buf kc, greta_buf vc, int n, int pos0, int n_head, int n_head_kv,
                            int head_dim, greta_buf out) {
	const char *fn = "attention_prefill";
	int rc = check(fn, q, kc, vc, n, pos0, n_head, n_head_kv, head_dim, out);
	if (rc) return rc;
	if (q.addr % 16 || kc.addr % 16 || vc.addr % 16)
		return fail(GRETA_ERR_ARG, "%s: q, k cache and v cache must start on 16-byte boundaries", fn);
	const dim3 grid(blocks(n, kBQ), n_head);
	const int group = n_head / n_head_kv;
	const float sc = attn_scale(head_dim);
	const float *qp = ptr<float>(q), *kp = ptr<float>(kc), *vp = ptr<float>(vc);
	float *op = ptr<float>(out);
	switch (head_dim) {
	case 16: attn_prefill_kernel<16><<<grid, kBQ>>>(qp, kp, vp, n, pos0, n_head, group, sc, op); break;
	case 32: attn_prefill_kernel<32><<<grid, kBQ>>>(qp, kp, vp, n, pos0, n_head, group, sc, op); break;
	case 64: attn_prefill_kernel<64><<<grid, kBQ>>>(qp, kp, vp, n, pos0, n_head, group, sc, op); break;
	case 128: attn_prefill_kernel<128><<<grid, kBQ>>>(qp, kp, vp, n, pos0, n_head, group, sc, op); break;
	default:
		return fail(GRETA_ERR_ARG, "%s: head_dim %d not supported (16, 32, 64 or 128; use attention_decode)", fn,
		            head_dim);
	}
	return launched(fn);
}

int greta_attention_decode(greta_buf q, greta_buf kc, greta_buf vc, int n, int pos0, int n_head, int n_head_kv,
                           int head_dim, greta_buf scratch, greta_buf out) {
	const char *fn = "attention_decode";
	int rc = check(fn, q, kc, vc, n, pos0, n_head, n_head_kv, head_dim, out);
	if (!rc) rc = need(fn, "scratch", scratch, greta_attention_decode_scratch(n, pos0, n_head, head_dim));
	if (rc) return rc;
	const int group = n_head / n_head_kv;
	const size_t smem = split_smem(head_dim, group);
	// The split kernel's threads t < group each finish one query head's tile: group must not
	// exceed the block.
	if (head_dim % 4 == 0 && group <= kSplitThreads && smem <= 48 * 1024 && q.addr % 16 == 0 && kc.addr % 16 == 0 &&
	    vc.addr % 16 == 0) {
		const int tiles = (pos0 + n + kSplit - 1) / kSplit;
		attn_split_kernel<<<dim3(n_head_kv, tiles, n), kSplitThreads, smem>>>(
			ptr<float>(q), ptr<float>(kc), ptr<float>(vc), pos0, n_head, group, head_dim, tiles, attn_scale(head_dim),
			ptr<float>(scratch));
		if ((rc = launched(fn))) return rc;
		attn_combine_kernel<<<dim3(n, n_head), kCombineThreads>>>(ptr<float>(scratch), pos0, n_head, head_dim, tiles, ptr<float>(out));
		return launched(fn);
	}
	const size_t dsmem = decode_smem(head_dim);
	if (dsmem > 48 * 1024)
		return fail(GRETA_ERR_ARG, "%s: head_dim %d needs %zu bytes of shared memory", fn, head_dim, dsmem);
	attn_decode_kernel<<<dim3(n, n_head), kReduceThreads, dsmem>>>(ptr<float>(q), ptr<float>(kc), ptr<float>(vc), pos0,
	                                                                 n, n_head, group, head_dim, attn_scale(head_dim),
	                                                                 ptr<float>(scratch), ptr<float>(out));
	return launched(fn);
}

uint64_t greta_attention_decode_scratch(int n, int pos0, int n_head, int head_dim) {
	const uint64_t keys = (uint64_t)pos0 + n;
	const uint64_t tiles = (keys + kSplit - 1) / kSplit;
	const uint64_t split = tiles * (uint64_t)(head_dim + 2), scores = keys;
	return (uint64_t)n * n_head * (split > scores ? split : scores);
}

} // extern "C"
