/*
 * greta_kernels.h: the C ABI of the gretabisect GPU kernels.
 *
 * One shared library (libgreta_kernels.so) built from the same HIP sources for AMD (hipcc) or
 * NVIDIA (nvcc through hip_nvidia.h). Callers link only this library and never call the GPU
 * runtime themselves, so one caller binary runs over either build.
 *
 * Conventions:
 *  - Every function returns GRETA_OK (0) or an error code; the text of the calling thread's
 *    last error is kept and read with greta_last_error.
 *  - Device memory is held in greta_buf values: an opaque device address plus a length in
 *    4-byte elements (float or int32). Views of a buffer come from greta_view. Every kernel
 *    checks, before it launches, that each buffer it touches is long enough for the shapes it
 *    was given, so a wrong shape is an error, never an out-of-bounds access.
 *  - Matrices are row-major float32. A weight matrix W has one row per output feature, so
 *    y = W x is the dot product of each row of W with x.
 *  - Kernels run in order on the main device queue; greta_sketch and greta_trace_download run
 *    in order on a second one, the trace queue, which sees the main queue's work up to the
 *    last greta_trace_fence, so tracing never holds the forward pass. Launch errors are
 *    reported by the launching call; a fault during execution is reported by the next call
 *    that synchronizes (greta_sync, greta_download, greta_trace_wait) or by any later launch.
 *    With GRETA_SYNC=1 in the environment every launch synchronizes, so a fault is reported
 *    by the kernel that caused it.
 *  - Reductions use a fixed order and no atomics: results repeat bit for bit on one device and
 *    do not depend on the wavefront size.
 */
#ifndef GRETA_KERNELS_H
#define GRETA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum {
	GRETA_OK = 0,
	GRETA_ERR_ARG = 1,      /* a bad argument or a shape that does not fit its buffer */
	GRETA_ERR_DEVICE = 2,   /* no usable device, or device selection failed */
	GRETA_ERR_MEMORY = 3,   /* allocation failed */
	GRETA_ERR_RUNTIME = 4,  /* the GPU runtime reported an error (launch, copy, execution) */
	GRETA_ERR_STATE = 5     /* called before greta_init */
};

/* A span of device memory: addr is opaque to the caller, count is its length in elements. */
typedef struct greta_buf {
	uint64_t addr;
	uint64_t count;
} greta_buf;

/* One column range of a matrix product's output: cols columns written to buf with row
 * stride ld (in elements). bias, when its addr is not 0, holds cols elements, one added to
 * each column after its product (a float addition of its own, as the CPU adds a bias to the
 * finished product); a zero greta_buf means no bias. */
typedef struct greta_seg {
	greta_buf buf;
	int32_t ld;
	int32_t cols;
	greta_buf bias;
} greta_seg;

/* ---- errors and devices ---- */

/* greta_last_error returns the text of the calling thread's last error ("" if none). */
const char *greta_last_error(void);

/* greta_platform returns "hip" for the AMD build and "cuda" for the NVIDIA build. */
const char *greta_platform(void);

/* greta_device_count stores the number of visible devices (HIP_VISIBLE_DEVICES or
 * CUDA_VISIBLE_DEVICES are honoured by the runtime). No device is an error. */
int greta_device_count(int *count);

/* greta_init selects device index (0 <= index < count) for the calling process. */
int greta_init(int index);

/* greta_device_name writes the device's marketing name into buf (NUL-terminated). */
int greta_device_name(char *buf, size_t len);

/* greta_device_arch writes the architecture: "gfx942" on AMD, "sm90" on NVIDIA. */
int greta_device_arch(char *buf, size_t len);

/* greta_device_info reports the wavefront size and the device memory in bytes. */
int greta_device_info(int *warp_size, uint64_t *total_mem, uint64_t *free_mem);

/* ---- memory ---- */

int greta_alloc(uint64_t count, greta_buf *out);
int greta_free(greta_buf b);
/* greta_view returns elements [off, off+count) of b. */
int greta_view(greta_buf b, uint64_t off, uint64_t count, greta_buf *out);
/* Copies of count elements between host memory and the start of a buffer; both wait for
 * the copy to finish, and greta_download for both queues first. */
int greta_upload(greta_buf dst, const void *src, uint64_t count);
int greta_download(void *dst, greta_buf src, uint64_t count);
/* greta_sync waits for every launched kernel and copy and reports the first execution error. */
int greta_sync(void);

/* ---- the trace queue ---- */

/* Page-locked host memory of count 4-byte elements, the destination of greta_trace_download
 * (other memory works, but the copy then holds the calling thread). */
int greta_host_alloc(uint64_t count, void **out);
int greta_host_free(void *p);
/* greta_trace_fence makes the trace queue's next work wait for everything launched on the
 * main queue so far. */
int greta_trace_fence(void);
/* greta_trace_download queues a copy of count elements from src to host memory dst on the
 * trace queue and returns at once; dst is valid after greta_trace_wait of a later ticket. */
int greta_trace_download(void *dst, greta_buf src, uint64_t count);
/* greta_trace_ticket marks the trace queue's work queued so far; greta_trace_wait, from any
 * thread, waits until it is done, reports its first execution error and spends the ticket
 * (each ticket is waited for exactly once). */
int greta_trace_ticket(uint64_t *ticket);
int greta_trace_wait(uint64_t ticket);

/* ---- kernels ---- */

/* out[i,:] = table[tokens[i],:] for i < n; table is (vocab, dim). A token outside
 * [0, vocab) yields a row of NaN (callers check ids before uploading them). */
int greta_embed(greta_buf tokens, int n, greta_buf table, int vocab, int dim, greta_buf out);

/* out[i,:] = x[i,:] / sqrt(mean(x[i,:]^2) + eps) * w for n rows of width dim. out may be x. */
int greta_rmsnorm(greta_buf x, greta_buf w, int n, int dim, float eps, greta_buf out);

/* Y = X W^T: X is (m, k), W is (n, k); output column j goes to the segment that holds it
 * (segments cover columns 0..n-1 in order), plus the segment's bias when it has one. Tiled
 * through shared memory for prefill; every output element sums k in ascending order, so a
 * row's result does not depend on m. */
int greta_matmul(greta_buf x, int m, int k, greta_buf w, int n, const greta_seg *segs, int nsegs);

/* The same product for few rows (decode): one pass over W, m <= GRETA_MATVEC_MAX_ROWS. */
#define GRETA_MATVEC_MAX_ROWS 4
int greta_matvec(greta_buf x, int m, int k, greta_buf w, int n, const greta_seg *segs, int nsegs);

/* RoPE styles: the values of engine.RopeStyle. */
enum {
	GRETA_ROPE_NORM = 0, /* llama: pair i is (2i, 2i+1) */
	GRETA_ROPE_NEOX = 1  /* NEOX (qwen2): pair i is (i, i + rope_dim/2) */
};

/* RoPE in place: x is (n, n_head*head_dim) at positions pos0..pos0+n-1; in each head, pair
 * i < rope_dim/2 (of style) turns by the angle pos * f_i, computed in double; the rest of the
 * head is left as is. f_i is freqs[i] when freqs is given: rope_dim/2 doubles (rope_dim
 * 4-byte elements, 8-byte aligned), the host's table (frequency factors, scaling); a zero
 * greta_buf means f_i = base^(-2i/rope_dim), computed on the device. */
int greta_rope(greta_buf x, int n, int n_head, int head_dim, int rope_dim, int pos0, int style, double base,
               greta_buf freqs);

/* Causal attention with grouped KV heads. q is (n, n_head*head_dim) for positions
 * pos0..pos0+n-1; kc, vc are one layer's cache, (ctx, n_head_kv*head_dim), holding
 * positions 0..pos0+n-1; out is (n, n_head*head_dim). Query head h reads KV head
 * h / (n_head/n_head_kv). Scores are scaled by 1/sqrt(head_dim) and each query's softmax
 * runs over its keys in ascending position order.
 * Any ratio n_head/n_head_kv works (Llama 3.2 1B: 32/8; Qwen2.5 0.5B: 14/2, 7 query heads
 * per KV head). greta_attention_prefill tiles queries and keys through shared memory
 * (head_dim one of 16, 32, 64, 128). greta_attention_decode takes any head_dim: keys are
 * split into tiles of 64 positions spread over blocks, one block for the query heads of a
 * KV head, then merged in ascending order (head_dim a multiple of 4, at most 128 query
 * heads per KV head, the tile in 48 KB of shared memory), else one block per query and
 * head; its scratch must hold greta_attention_decode_scratch(n, pos0, n_head, head_dim)
 * elements. */
int greta_attention_prefill(greta_buf q, greta_buf kc, greta_buf vc, int n, int pos0, int n_head,
                            int n_head_kv, int head_dim, greta_buf out);
int greta_attention_decode(greta_buf q, greta_buf kc, greta_buf vc, int n, int pos0, int n_head,
                           int n_head_kv, int head_dim, greta_buf scratch, greta_buf out);
uint64_t greta_attention_decode_scratch(int n, int pos0, int n_head, int head_dim);

/* out[i] = silu(gate[i]) * up[i] for count elements; silu(g) = g / (1 + exp(-g)). */
int greta_swiglu(greta_buf gate, greta_buf up, uint64_t count, greta_buf out);

/* out[i] = a[i] + b[i] for count elements; out may be a or b. */
int greta_add(greta_buf a, greta_buf b, uint64_t count, greta_buf out);

/* Fault kinds: the values of trace.Kind. */
enum {
	GRETA_FAULT_AFFINE = 0,     /* x*scale + add, rounded after the product and after the sum */
	GRETA_FAULT_ZERO = 1,       /* +0 */
	GRETA_FAULT_NAN = 2,        /* the quiet NaN 0x7fc00000 */
	GRETA_FAULT_INF = 3,        /* +Inf */
	GRETA_FAULT_SIGN = 4,       /* the sign bit flipped */
	GRETA_FAULT_ROUND_F16 = 5,  /* rounded to half precision, ties to even (golden.RoundF16) */
	GRETA_FAULT_ROUND_BF16 = 6, /* rounded to bfloat16, ties to even (golden.RoundBF16) */
};

/* Fault injection: channels ch0..ch0+nch-1 of rows row0..row0+nrows-1 of x (row width
 * width) are perturbed as kind says, with the same bits as the CPU's trace.Fault.Apply
 * (never a fused multiply-add); scale and add are read for GRETA_FAULT_AFFINE only. */
int greta_fault(greta_buf x, int width, int row0, int nrows, int ch0, int nch, int kind, float scale, float add);

/* out[j,:] = src[rows[j],:] for j < nrows; rows is an int32 buffer; a row index outside
 * src yields a row of NaN. */
int greta_gather(greta_buf src, int width, greta_buf rows, int nrows, greta_buf out);

/* Sketch sums (golden.SketchCoefficients): for each of nrows rows of x (width n), the
 * GRETA_SKETCH_PROJ projections sum_i coef[i*GRETA_SKETCH_PROJ+j] * x[i], then sum_i x[i]^2
 * and sum_i |x[i]|, each one float64 sum over i = 0..n-1 in order with every product
 * rounded before its addition (never fused): the bits of the CPU's sequential loop. coef is
 * (n, GRETA_SKETCH_PROJ) double (the float32 coefficients, widened); out receives
 * nrows * GRETA_SKETCH_SUMS doubles, row by row. Both hold doubles, two 4-byte elements
 * each. Runs on the trace queue (fence first when x comes from the main queue). */
#define GRETA_SKETCH_PROJ 96
#define GRETA_SKETCH_SUMS (GRETA_SKETCH_PROJ + 2)
int greta_sketch(greta_buf x, int nrows, int n, greta_buf coef, greta_buf out);

#ifdef __cplusplus
}
#endif

#endif /* GRETA_KERNELS_H */
