//go:build unix

package ownerr_test

import (
	"syscall"
	"time"
)

// cpuTime is the process's user and system time so far, in seconds: on a shared machine
// the wall time says more about the neighbours than about the work.
func cpuTime() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
