// ops.hip: the row-wise and element-wise kernels.
#include <math.h>

#include "internal.h"

namespace greta {

constexpr unsigned kElemThreads = 256;

__global__ void embed_kernel(const int32_t *tokens, const float *table, int vocab, int dim, float *out) {
	const int row = blockIdx.y;
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= dim) return;
	const int id = tokens[row];
	out[(size_t)row * dim + c] = (id >= 0 && id < vocab) ? table[(size_t)id * dim + c] : NAN;
}

__global__ void rmsnorm_kernel(const float *x, const float *w, int dim, float eps, float *out) {
	__shared__ float s[kReduceThreads];
	const float *xr = x + (size_t)blockIdx.x * dim;
	float *yr = out + (size_t)blockIdx.x * dim;
	float acc = 0.f;
	for (int c = threadIdx.x; c < dim; c += kReduceThreads) acc = fmaf(xr[c], xr[c], acc);
	const float ss = reduce_sum(s, acc);
	const float inv = 1.0f / sqrtf(ss / (float)dim + eps);
	for (int c = threadIdx.x; c < dim; c += kReduceThreads) yr[c] = __fmul_rn(__fmul_rn(xr[c], inv), w[c]);
}

// rope_kernel turns pair p of head h of a row. Without a table the frequency is the
// device's pow, the expression the normal style has always used, so models without
// frequency factors or scaling keep their bits; with one, it is the host's value.
__global__ void rope_kernel(float *x, int n_head, int head_dim, int rope_dim, int pos0, int style, double base,
                            const double *freqs) {
	const int row = blockIdx.y;
	const int half = rope_dim / 2;
	const int i = blockIdx.x * blockDim.x + threadIdx.x; // pair index over all heads
	if (i >= n_head * half) return;
	const int h = i / half, p = i % half;
	const double f = freqs ? freqs[p] : pow(base, -2.0 * p / (double)rope_dim);
	const double theta = (double)(pos0 + row) * f;
	const float c = (float)cos(theta), s = (float)sin(theta);
	float *v = x + (size_t)row * n_head * head_dim + (size_t)h * head_dim;
	const int a = style == GRETA_ROPE_NEOX ? p : 2 * p, b = style == GRETA_ROPE_NEOX ? p + half : 2 * p + 1;
	const float x0 = v[a], x1 = v[b];
	v[a] = __fsub_rn(__fmul_rn(x0, c), __fmul_rn(x1, s));
	v[b] = __fadd_rn(__fmul_rn(x0, s), __fmul_rn(x1, c));
}

__global__ void swiglu_kernel(const float *gate, const float *up, uint64_t count, float *out) {
	const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= count) return;
	const float g = gate[i];
	out[i] = __fmul_rn(g / (1.0f + expf(-g)), up[i]);
}

__global__ void add_kernel(const float *a, const float *b, uint64_t count, float *out) {
	const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < count) out[i] = __fadd_rn(a[i], b[i]);
}

// round_f16 and round_bf16 are golden.RoundF16 and golden.RoundBF16, bit for bit: the same
// integer operations, and for half's subnormals an exact scaling and a round to the nearest
// integer, ties to even.
__device__ float round_f16(float v) {
	const uint32_t b = __float_as_uint(v), sign = b & 0x80000000u, abs = b & 0x7fffffffu;
	if (abs > 0x7f800000u) return __uint_as_float(sign | 0x7fc00000u | (abs & 0x007fe000u));
	if (abs >= 0x477ff000u) return __uint_as_float(sign | 0x7f800000u);
	if (abs >= 0x38800000u) return __uint_as_float(sign | ((abs + 0x0fffu + ((abs >> 13) & 1u)) & ~0x1fffu));
	const float q = rintf(__fmul_rn(__uint_as_float(abs), 16777216.0f));
	return __uint_as_float(sign | __float_as_uint(__fmul_rn(q, 5.9604644775390625e-8f)));
}

__device__ float round_bf16(float v) {
	const uint32_t b = __float_as_uint(v);
	if ((b & 0x7fffffffu) > 0x7f800000u) return __uint_as_float((b & 0x80000000u) | 0x7fc00000u | (b & 0x007f0000u));
	return __uint_as_float((b + 0x7fffu + ((b >> 16) & 1u)) & ~0xffffu);
}

// fault_kernel perturbs channels ch0..ch0+nch-1 of nrows rows of width width (trace.Fault.Apply).
__global__ void fault_kernel(float *x, int width, int nrows, int ch0, int nch, int kind, float scale, float add) {
	const uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i >= (uint64_t)nrows * nch) return;
	float *e = x + (i / nch) * width + ch0 + i % nch;
	switch (kind) {
	case GRETA_FAULT_AFFINE: *e = __fadd_rn(__fmul_rn(*e, scale), add); break;
	case GRETA_FAULT_ZERO: *e = 0.0f; break;
	case GRETA_FAULT_NAN: *e = __uint_as_float(0x7fc00000u); break;
	case GRETA_FAULT_INF: *e = __uint_as_float(0x7f800000u); break;
	case GRETA_FAULT_SIGN: *e = __uint_as_float(__float_as_uint(*e) ^ 0x80000000u); break;
	case GRETA_FAULT_ROUND_F16: *e = round_f16(*e); break;
	case GRETA_FAULT_ROUND_BF16: *e = round_bf16(*e); break;
	}
}

__global__ void gather_kernel(const float *src, int src_rows, int width, const int32_t *rows, float *out) {
	const int j = blockIdx.y;
	const int c = blockIdx.x * blockDim.x + threadIdx.x;
	if (c >= width) return;
	const int r = rows[j];
	out[(size_t)j * width + c] = (r >= 0 && r < src_rows) ? src[(size_t)r * width + c] : NAN;
}

static int positive(const char *fn, const char *what, long long v) {
	if (v <= 0) return fail(GRETA_ERR_ARG, "%s: %s = %lld, must be positive", fn, what, v);
	return GRETA_OK;
}

// Kernels with one grid row per matrix row take at most kMaxGridRows rows (the grid's y limit).
constexpr int kMaxGridRows = 65535;

static int gridRows(const char *fn, const char *what, int v) {
	if (v > kMaxGridRows) return fail(GRETA_ERR_ARG, "%s: %s = %d rows, at most %d per launch", fn, what, v, kMaxGridRows);
	return positive(fn, what, v);
}

} // namespace greta

using namespace greta;

extern "C" {

int greta_embed(greta_buf tokens, int n, greta_buf table, int vocab, int dim, greta_buf out) {
	const char *fn = "embed";
	int rc = ready(fn);
	if (!rc) rc = gridRows(fn, "n", n);
	if (!rc) rc = positive(fn, "vocab", vocab);
	if (!rc) rc = positive(fn, "dim", dim);
	if (!rc) rc = need(fn, "tokens", tokens, (uint64_t)n);
	if (!rc) rc = need(fn, "table", table, (uint64_t)vocab * dim);
	if (!rc) rc = need(fn, "out", out, (uint64_t)n * dim);
	if (rc) return rc;
	embed_kernel<<<dim3(blocks(dim, kElemThreads), n), kElemThreads>>>(ptr<int32_t>(tokens), ptr<float>(table), vocab,
	                                                                    dim, ptr<float>(out));
	return launched(fn);
}

int greta_rmsnorm(greta_buf x, greta_buf w, int n, int dim, float eps, greta_buf out) {
	const char *fn = "rmsnorm";
	int rc = ready(fn);
	if (!rc) rc = positive(fn, "n", n);
	if (!rc) rc = positive(fn, "dim", dim);
	if (!rc) rc = need(fn, "x", x, (uint64_t)n * dim);
	if (!rc) rc = need(fn, "w", w, (uint64_t)dim);
	if (!rc) rc = need(fn, "out", out, (uint64_t)n * dim);
	if (rc) return rc;
	rmsnorm_kernel<<<n, kReduceThreads>>>(ptr<float>(x), ptr<float>(w), dim, eps, ptr<float>(out));
	return launched(fn);
}

int greta_rope(greta_buf x, int n, int n_head, int head_dim, int rope_dim, int pos0, int style, double base,
               greta_buf freqs) {
	const char *fn = "rope";
	int rc = ready(fn);
	if (!rc) rc = gridRows(fn, "n", n);
	if (!rc) rc = positive(fn, "n_head", n_head);
	if (!rc) rc = positive(fn, "head_dim", head_dim);
	if (!rc) rc = positive(fn, "rope_dim", rope_dim);
	if (rc) return rc;
	if (rope_dim % 2 != 0 || rope_dim > head_dim)
		return fail(GRETA_ERR_ARG, "%s: rope_dim %d must be even and at most head_dim %d", fn, rope_dim, head_dim);
	if (pos0 < 0) return fail(GRETA_ERR_ARG, "%s: pos0 = %d, must not be negative", fn, pos0);
	if (style != GRETA_ROPE_NORM && style != GRETA_ROPE_NEOX) return fail(GRETA_ERR_ARG, "%s: unknown style %d", fn, style);
	if (freqs.addr == 0 && !(base > 0)) return fail(GRETA_ERR_ARG, "%s: base = %g, must be positive", fn, base);
	if (freqs.addr != 0 && freqs.addr % 8 != 0)
		return fail(GRETA_ERR_ARG, "%s: freqs must start on an 8-byte boundary (it holds doubles)", fn);
	rc = need(fn, "x", x, (uint64_t)n * n_head * head_dim);
	if (!rc && freqs.addr != 0) rc = need(fn, "freqs", freqs, (uint64_t)rope_dim); // rope_dim/2 doubles
	if (rc) return rc;
	const uint64_t pairs = (uint64_t)n_head * (rope_dim / 2);
	if (pairs > 0x7fffffff) return fail(GRETA_ERR_ARG, "%s: %llu pairs a row, beyond 32-bit indexing", fn, (unsigned long long)pairs);
	rope_kernel<<<dim3(blocks(pairs, kElemThreads), n), kElemThreads>>>(
		ptr<float>(x), n_head, head_dim, rope_dim, pos0, style, base, freqs.addr != 0 ? ptr<const double>(freqs) : nullptr);
	return launched(fn);
}

int greta_swiglu(greta_buf gate, greta_buf up, uint64_t count, greta_buf out) {
	const char *fn = "swiglu";
	int rc = ready(fn);
	if (!rc) rc = positive(fn, "count", (long long)count);
	if (!rc) rc = need(fn, "gate", gate, count);
	if (!rc) rc = need(fn, "up", up, count);
	if (!rc) rc = need(fn, "out", out, count);
	if (rc) return rc;
	swiglu_kernel<<<blocks(count, kElemThreads), kElemThreads>>>(ptr<float>(gate), ptr<float>(up), count,
	                                                             ptr<float>(out));
	return launched(fn);
}

int greta_add(greta_buf a, greta_buf b, uint64_t count, greta_buf out) {
	const char *fn = "add";
	int rc = ready(fn);
	if (!rc) rc = positive(fn, "count", (long long)count);
	if (!rc) rc = need(fn, "a", a, count);
	if (!rc) rc = need(fn, "b", b, count);
	if (!rc) rc = need(fn, "out", out, count);
	if (rc) return rc;
	add_kernel<<<blocks(count, kElemThreads), kElemThreads>>>(ptr<float>(a), ptr<float>(b), count, ptr<float>(out));
	return launched(fn);
}

int greta_fault(greta_buf x, int width, int row0, int nrows, int ch0, int nch, int kind, float scale, float add) {
	const char *fn = "fault";
	int rc = ready(fn);
	if (!rc) rc = positive(fn, "width", width);
	if (!rc) rc = positive(fn, "nrows", nrows);
	if (!rc) rc = positive(fn, "nch", nch);
	if (rc) return rc;
	if (row0 < 0) return fail(GRETA_ERR_ARG, "%s: row0 = %d, must not be negative", fn, row0);
	if (ch0 < 0 || ch0 + (long long)nch > width)
		return fail(GRETA_ERR_ARG, "%s: channels %d..%lld outside the row width %d", fn, ch0, ch0 + (long long)nch - 1, width);
	if (kind < GRETA_FAULT_AFFINE || kind > GRETA_FAULT_ROUND_BF16)
		return fail(GRETA_ERR_ARG, "%s: unknown kind %d", fn, kind);
	rc = need(fn, "x", x, (uint64_t)(row0 + (uint64_t)nrows) * width);
	if (rc) return rc;
	const uint64_t count = (uint64_t)nrows * nch;
	fault_kernel<<<blocks(count, kElemThreads), kElemThreads>>>(ptr<float>(x) + (size_t)row0 * width, width, nrows, ch0,
	                                                            nch, kind, scale, add);
	return launched(fn);
}

int greta_gather(greta_buf src, int width, greta_buf rows, int nrows, greta_buf out) {
	const char *fn = "gather";
	int rc = ready(fn);
	if (!rc) rc = positive(fn, "width", width);
	if (!rc) rc = gridRows(fn, "nrows", nrows);
	if (!rc) rc = need(fn, "rows", rows, (uint64_t)nrows);
	if (!rc) rc = need(fn, "out", out, (uint64_t)nrows * width);
	if (!rc) rc = need(fn, "src", src, (uint64_t)width);
	if (rc) return rc;
	const uint64_t src_rows = src.count / (uint64_t)width;
	gather_kernel<<<dim3(blocks(width, kElemThreads), nrows), kElemThreads>>>(
		ptr<float>(src), src_rows > 0x7fffffff ? 0x7fffffff : (int)src_rows, width, ptr<int32_t>(rows), ptr<float>(out));
	return launched(fn);
}

} // extern "C"
