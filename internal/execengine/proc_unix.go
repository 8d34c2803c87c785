//go:build unix

package execengine

import (
	"os/exec"
	"syscall"
)

// ownGroup starts the engine in a process group of its own, so that a timeout or the end of
// the run kills whatever it started too (a launcher script's engine, a server's workers).
func ownGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return killGroup(cmd) }
}

// killGroup kills the engine's process group; a group already gone is no error.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil {
		return nil
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
		return err
	}
	return nil
}
