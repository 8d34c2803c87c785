// runtime.hip: errors, device selection and memory behind the C ABI.
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

namespace greta {

static thread_local char last_error[1024];
static bool initialized;
static bool sync_each_launch;
// The trace queue: sketches of traced rows and their copies back to the host run there,
// beside the forward pass on the main (default) queue. Non-blocking, so the default queue
// does not wait for it implicitly; greta_trace_fence orders the two where they share data.
static hipStream_t trace_q;
static hipEvent_t fence_ev;

hipStream_t trace_queue() { return trace_q; }

int fail(int code, const char *fmt, ...) {
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(last_error, sizeof last_error, fmt, ap);
	va_end(ap);
	return code;
}

int ok() {
	last_error[0] = 0;
	return GRETA_OK;
}

int ready(const char *fn) {
	if (!initialized) return fail(GRETA_ERR_STATE, "%s: no device selected (call greta_init first)", fn);
	return GRETA_OK;
}

int need(const char *fn, const char *name, greta_buf b, uint64_t want) {
	if (b.addr == 0) return fail(GRETA_ERR_ARG, "%s: %s: null buffer", fn, name);
	if (b.count < want)
		return fail(GRETA_ERR_ARG, "%s: %s holds %llu elements, the shapes need %llu", fn, name,
		            (unsigned long long)b.count, (unsigned long long)want);
	return GRETA_OK;
}

int launched(const char *fn) {
	hipError_t e = hipGetLastError();
	if (e != hipSuccess) return fail(GRETA_ERR_RUNTIME, "%s: launch failed: %s", fn, hipGetErrorString(e));
	if (sync_each_launch) {
		e = hipDeviceSynchronize();
		if (e != hipSuccess) return fail(GRETA_ERR_RUNTIME, "%s: launch failed: %s", fn, hipGetErrorString(e));
	}
	return ok();
}

static int runtime_error(const char *fn, hipError_t e) {
	return fail(GRETA_ERR_RUNTIME, "%s: %s", fn, hipGetErrorString(e));
}

} // namespace greta

using namespace greta;

extern "C" {

const char *greta_last_error(void) { return last_error; }

const char *greta_platform(void) { return GRETA_PLATFORM; }

int greta_device_count(int *count) {
	int n = 0;
	hipError_t e = hipGetDeviceCount(&n);
	if (e != hipSuccess) return fail(GRETA_ERR_DEVICE, "no GPU device: %s", hipGetErrorString(e));
	if (n <= 0) return fail(GRETA_ERR_DEVICE, "no GPU device visible");
	*count = n;
	return ok();
}

int greta_init(int index) {
	int n = 0;
	int rc = greta_device_count(&n);
	if (rc != GRETA_OK) return rc;
	if (index < 0 || index >= n)
		return fail(GRETA_ERR_DEVICE, "device index %d out of range: %d device(s) visible", index, n);
	hipError_t e = hipSetDevice(index);
	if (e != hipSuccess) return fail(GRETA_ERR_DEVICE, "select device %d: %s", index, hipGetErrorString(e));
	hipDeviceProp_t p;
	e = hipGetDeviceProperties(&p, index);
	if (e != hipSuccess) return fail(GRETA_ERR_DEVICE, "device %d properties: %s", index, hipGetErrorString(e));
	// Reductions use kReduceThreads-wide blocks and __syncthreads only, so any wavefront size
	// that divides the block works and gives the same bits.
	if (p.warpSize <= 0 || kReduceThreads % p.warpSize != 0)
		return fail(GRETA_ERR_DEVICE, "device %d: wavefront size %d does not divide %d", index, p.warpSize,
		            kReduceThreads);
	const char *s = getenv("GRETA_SYNC");
	sync_each_launch = s != nullptr && strcmp(s, "1") == 0;
	if (trace_q == nullptr) {
		e = hipStreamCreateWithFlags(&trace_q, hipStreamNonBlocking);
		if (e == hipSuccess) e = hipEventCreateWithFlags(&fence_ev, hipEventDisableTiming);
		if (e != hipSuccess) return fail(GRETA_ERR_DEVICE, "device %d: trace queue: %s", index, hipGetErrorString(e));
	}
	initialized = true;
	return ok();
}

static int props(const char *fn, hipDeviceProp_t *p) {
	int rc = ready(fn);
	if (rc != GRETA_OK) return rc;
	int dev = 0;
	hipError_t e = hipGetDevice(&dev);
	if (e == hipSuccess) e = hipGetDeviceProperties(p, dev);
	if (e != hipSuccess) return runtime_error(fn, e);
	return GRETA_OK;
}

int greta_device_name(char *buf, size_t len) {
	hipDeviceProp_t p;
	int rc = props("greta_device_name", &p);
	if (rc != GRETA_OK) return rc;
	snprintf(buf, len, "%s", p.name);
	return ok();
}

int greta_device_arch(char *buf, size_t len) {
	hipDeviceProp_t p;
	int rc = props("greta_device_arch", &p);
	if (rc != GRETA_OK) return rc;
#if defined(__HIP_PLATFORM_NVIDIA__)
	snprintf(buf, len, "sm%d%d", p.major, p.minor);
#else
	// gcnArchName reads like "gfx942:sramecc+:xnack-": keep the processor name.
	snprintf(buf, len, "%.*s", (int)strcspn(p.gcnArchName, ":"), p.gcnArchName);
#endif
	return ok();
}

int greta_device_info(int *warp_size, uint64_t *total_mem, uint64_t *free_mem) {
	hipDeviceProp_t p;
	int rc = props("greta_device_info", &p);
	if (rc != GRETA_OK) return rc;
	size_t fr = 0, tot = 0;
	hipError_t e = hipMemGetInfo(&fr, &tot);
	if (e != hipSuccess) return runtime_error("greta_device_info", e);
	*warp_size = p.warpSize;
	*total_mem = tot;
	*free_mem = fr;
	return ok();
}

int greta_alloc(uint64_t count, greta_buf *out) {
	int rc = ready("greta_alloc");
	if (rc != GRETA_OK) return rc;
	if (count == 0) return fail(GRETA_ERR_ARG, "greta_alloc: zero elements");
	void *p = nullptr;
	hipError_t e = hipMalloc(&p, count * 4);
	if (e != hipSuccess)
		return fail(GRETA_ERR_MEMORY, "greta_alloc: %llu bytes: %s", (unsigned long long)(count * 4),
		            hipGetErrorString(e));
	out->addr = (uint64_t)(uintptr_t)p;
	out->count = count;
	return ok();
}

int greta_free(greta_buf b) {
	if (b.addr == 0) return ok();
	hipError_t e = hipFree(ptr<void>(b));
	if (e != hipSuccess) return runtime_error("greta_free", e);
	return ok();
}

int greta_view(greta_buf b, uint64_t off, uint64_t count, greta_buf *out) {
	if (b.addr == 0) return fail(GRETA_ERR_ARG, "greta_view: null buffer");
	if (off > b.count || count > b.count - off)
		return fail(GRETA_ERR_ARG, "greta_view: elements [%llu, %llu) past the end of a buffer of %llu",
		            (unsigned long long)off, (unsigned long long)(off + count), (unsigned long long)b.count);
	out->addr = b.addr + off * 4;
	out->count = count;
	return ok();
}

int greta_upload(greta_buf dst, const void *src, uint64_t count) {
	int rc = ready("greta_upload");
	if (rc == GRETA_OK) rc = need("greta_upload", "dst", dst, count);
	if (rc != GRETA_OK) return rc;
	if (count == 0) return ok();
	hipError_t e = hipMemcpy(ptr<void>(dst), src, count * 4, hipMemcpyHostToDevice);
	if (e != hipSuccess) return runtime_error("greta_upload", e);
	return ok();
}

int greta_download(void *dst, greta_buf src, uint64_t count) {
	int rc = ready("greta_download");
	if (rc == GRETA_OK) rc = need("greta_download", "src", src, count);
	if (rc != GRETA_OK) return rc;
	if (count == 0) return ok();
	// The copy itself waits for the default queue; the trace queue may have written src too.
	hipError_t e = hipStreamSynchronize(trace_q);
	if (e == hipSuccess) e = hipMemcpy(dst, ptr<void>(src), count * 4, hipMemcpyDeviceToHost);
	if (e != hipSuccess) return runtime_error("greta_download", e);
	return ok();
}

int greta_host_alloc(uint64_t count, void **out) {
	int rc = ready("greta_host_alloc");
	if (rc != GRETA_OK) return rc;
	if (count == 0) return fail(GRETA_ERR_ARG, "greta_host_alloc: zero elements");
	void *p = nullptr;
	hipError_t e = hipHostMalloc(&p, count * 4, hipHostMallocDefault);
	if (e != hipSuccess)
		return fail(GRETA_ERR_MEMORY, "greta_host_alloc: %llu bytes of page-locked memory: %s",
		            (unsigned long long)(count * 4), hipGetErrorString(e));
	*out = p;
	return ok();
}

int greta_host_free(void *p) {
	if (p == nullptr) return ok();
	hipError_t e = hipHostFree(p);
	if (e != hipSuccess) return runtime_error("greta_host_free", e);
	return ok();
}

int greta_trace_fence(void) {
	int rc = ready("greta_trace_fence");
	if (rc != GRETA_OK) return rc;
	// The wait captures the event as recorded now, so one event serves every fence.
	hipError_t e = hipEventRecord(fence_ev, 0);
	if (e == hipSuccess) e = hipStreamWaitEvent(trace_q, fence_ev, 0);
	if (e != hipSuccess) return runtime_error("greta_trace_fence", e);
	return ok();
}

int greta_trace_download(void *dst, greta_buf src, uint64_t count) {
	int rc = ready("greta_trace_download");
	if (rc == GRETA_OK) rc = need("greta_trace_download", "src", src, count);
	if (rc != GRETA_OK) return rc;
	if (count == 0) return ok();
	hipError_t e = hipMemcpyAsync(dst, ptr<void>(src), count * 4, hipMemcpyDeviceToHost, trace_q);
	if (e != hipSuccess) return runtime_error("greta_trace_download", e);
	return ok();
}

int greta_trace_ticket(uint64_t *ticket) {
	int rc = ready("greta_trace_ticket");
	if (rc != GRETA_OK) return rc;
	// The waiter spins (no hipEventBlockingSync): a sleeping waiter wakes late, and decode
	// waits once a token (3.77-3.83 against 3.85-3.90 ms a token on the H100).
	hipEvent_t ev;
	hipError_t e = hipEventCreateWithFlags(&ev, hipEventDisableTiming);
	if (e != hipSuccess) return runtime_error("greta_trace_ticket", e);
	e = hipEventRecord(ev, trace_q);
	if (e != hipSuccess) {
		(void)hipEventDestroy(ev);
		return runtime_error("greta_trace_ticket", e);
	}
	*ticket = (uint64_t)(uintptr_t)ev;
	return ok();
}

int greta_trace_wait(uint64_t ticket) {
	if (ticket == 0) return fail(GRETA_ERR_ARG, "greta_trace_wait: no ticket");
	hipEvent_t ev = (hipEvent_t)(uintptr_t)ticket;
	hipError_t e = hipEventSynchronize(ev);
	hipError_t d = hipEventDestroy(ev);
	if (e == hipSuccess) e = d;
	if (e != hipSuccess) return runtime_error("greta_trace_wait", e);
	return ok();
}

int greta_sync(void) {
	int rc = ready("greta_sync");
	if (rc != GRETA_OK) return rc;
	hipError_t e = hipDeviceSynchronize();
	if (e != hipSuccess) return runtime_error("greta_sync", e);
	return ok();
}

} // extern "C"
