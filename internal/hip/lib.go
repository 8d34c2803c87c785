//go:build rocm

package hip

/*
#cgo CFLAGS: -I${SRCDIR}/../../kernels
#cgo LDFLAGS: -L${SRCDIR}/../../kernels/build -lgreta_kernels -Wl,--enable-new-dtags -Wl,-rpath,${SRCDIR}/../../kernels/build
#include <stdlib.h>
#include "greta_kernels.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"
)

// The library's run path is a DT_RUNPATH (--enable-new-dtags), which LD_LIBRARY_PATH
// overrides: a binary built against the AMD library runs over the NVIDIA one when
// LD_LIBRARY_PATH names it.

// Available reports whether this binary holds the HIP backend (built with -tags rocm).
const Available = true

// libError is an error reported by libgreta_kernels: its code and its text.
type libError struct {
	code C.int
	text string
}

func (e *libError) Error() string { return e.text }

// lastError returns the library's error for rc. The text is kept per OS thread: callers hold
// the thread (runtime.LockOSThread) across the call and this read.
func lastError(rc C.int) error {
	if rc == C.GRETA_OK {
		return nil
	}
	err := &libError{code: rc, text: C.GoString(C.greta_last_error())}
	if rc == C.GRETA_ERR_DEVICE {
		return fmt.Errorf("%w: %s", ErrNoDevice, strings.TrimPrefix(err.text, "no GPU device: "))
	}
	return err
}

// buf is a span of device memory (C.greta_buf): an opaque address and a length in 4-byte
// elements.
type buf = C.greta_buf

var device struct {
	once sync.Once
	name string // "cuda-sm90", "hip-gfx942"
	long string // the marketing name
	err  error
}

// initDevice selects the device once per process: the runtime's visible devices, then
// GRETA_DEVICE.
func initDevice() (string, error) {
	device.once.Do(func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var count C.int
		if device.err = lastError(C.greta_device_count(&count)); device.err != nil {
			device.err = fmt.Errorf("hip: %w", device.err)
			return
		}
		idx, err := deviceIndex(os.Getenv(EnvDevice), int(count))
		if err != nil {
			device.err = err
			return
		}
		if device.err = lastError(C.greta_init(C.int(idx))); device.err != nil {
			device.err = fmt.Errorf("hip: device %d: %w", idx, device.err)
			return
		}
		var arch, name [256]C.char
		if err := lastError(C.greta_device_arch(&arch[0], C.size_t(len(arch)))); err != nil {
			device.err = fmt.Errorf("hip: device %d: %w", idx, err)
			return
		}
		if err := lastError(C.greta_device_name(&name[0], C.size_t(len(name)))); err != nil {
			device.err = fmt.Errorf("hip: device %d: %w", idx, err)
			return
		}
		device.name = C.GoString(C.greta_platform()) + "-" + C.GoString(&arch[0])
		device.long = C.GoString(&name[0])
	})
	return device.name, device.err
}

func alloc(count int) (buf, error) {
	var b buf
	if count <= 0 {
		count = 1
	}
	return b, lastError(C.greta_alloc(C.uint64_t(count), &b))
}

func free(b buf) error { return lastError(C.greta_free(b)) }

// view returns elements [off, off+count) of b.
func view(b buf, off, count int) (buf, error) {
	var v buf
	return v, lastError(C.greta_view(b, C.uint64_t(off), C.uint64_t(count), &v))
}

func upload(dst buf, src []float32) error {
	if len(src) == 0 {
		return nil
	}
	return lastError(C.greta_upload(dst, unsafe.Pointer(&src[0]), C.uint64_t(len(src))))
}

func uploadInts(dst buf, src []int32) error {
	if len(src) == 0 {
		return nil
	}
	return lastError(C.greta_upload(dst, unsafe.Pointer(&src[0]), C.uint64_t(len(src))))
}

func download(dst []float32, src buf) error {
	if len(dst) == 0 {
		return nil
	}
	return lastError(C.greta_download(unsafe.Pointer(&dst[0]), src, C.uint64_t(len(dst))))
}

// uploadFloat64 copies len(src) float64 values, two 4-byte elements each, to dst.
func uploadFloat64(dst buf, src []float64) error {
	if len(src) == 0 {
		return nil
	}
	return lastError(C.greta_upload(dst, unsafe.Pointer(&src[0]), C.uint64_t(2*len(src))))
}

func count(b buf) int { return int(b.count) }

// hostBuf is page-locked host memory (greta_host_alloc) of n 4-byte elements, where the
// trace queue's copies land without holding the launching thread.
type hostBuf struct {
	p unsafe.Pointer
	n int
}

func hostAlloc(n int) (hostBuf, error) {
	var p unsafe.Pointer
	if err := lastError(C.greta_host_alloc(C.uint64_t(max(n, 1)), &p)); err != nil {
		return hostBuf{}, err
	}
	return hostBuf{p: p, n: n}, nil
}

func hostFree(h hostBuf) error { return lastError(C.greta_host_free(h.p)) }

func (h hostBuf) floats() []float32 { return unsafe.Slice((*float32)(h.p), h.n) }

func (h hostBuf) float64s() []float64 { return unsafe.Slice((*float64)(h.p), h.n/2) }

func traceFence() error { return lastError(C.greta_trace_fence()) }

// traceDownload queues a copy of src into dst, page-locked memory from hostAlloc, on the
// trace queue; dst holds the data once a later ticket is waited for.
func traceDownload(dst []float32, src buf) error {
	if len(dst) == 0 {
		return nil
	}
	return lastError(C.greta_trace_download(unsafe.Pointer(&dst[0]), src, C.uint64_t(len(dst))))
}

// traceDownloadFloat64 is traceDownload for len(dst) float64 values, two elements each.
func traceDownloadFloat64(dst []float64, src buf) error {
	if len(dst) == 0 {
		return nil
	}
	return lastError(C.greta_trace_download(unsafe.Pointer(&dst[0]), src, C.uint64_t(2*len(dst))))
}

// ticket marks the trace queue's work so far; wait for it exactly once.
type ticket C.uint64_t

func traceTicket() (ticket, error) {
	var t C.uint64_t
	err := lastError(C.greta_trace_ticket(&t))
	return ticket(t), err
}

// wait waits for the trace queue's work up to t. The error text is per OS thread: the
// caller holds its thread.
func (t ticket) wait() error { return lastError(C.greta_trace_wait(C.uint64_t(t))) }
