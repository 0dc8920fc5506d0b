//go:build unix

package chaos

import (
	"errors"
	"os/exec"
	"syscall"
)

// sigPause and sigResume freeze and continue a node, like a long GC pause or a hung machine.
const (
	sigPause  = syscall.SIGSTOP
	sigResume = syscall.SIGCONT
)

var errNoPause = errors.New("pausing a process is not supported on this platform")

// OwnProcessGroup gives a child process (a node) a process group of its own, which keeps a terminal's Ctrl-C (meant
// for `sluice chaos`) from stopping the brokers under its feet; Close kills them.
func OwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
}
