//go:build !unix

package execengine

import "os/exec"

// ownGroup leaves the engine in this process's group: without unix process groups a timeout
// kills the engine's own process only.
func ownGroup(cmd *exec.Cmd) {}

// killGroup kills the engine's process, once it has one.
func killGroup(cmd *exec.Cmd) error {
	if cmd.Process == nil || cmd.ProcessState != nil {
		return nil
	}
	return cmd.Process.Kill()
}
