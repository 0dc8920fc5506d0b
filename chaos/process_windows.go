package chaos

import (
	"errors"
	"os/exec"
	"syscall"
)

// Windows has no SIGSTOP/SIGCONT: Pause and Resume answer errNoPause.
const (
	sigPause  syscall.Signal = 0
	sigResume syscall.Signal = 0
)

var errNoPause = errors.New("pausing a process is not supported on windows")

// OwnProcessGroup gives a child process (a node) a process group of its own, so a console's Ctrl-C meant for
// `sluice chaos` does not reach the brokers.
func OwnProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: syscall.CREATE_NEW_PROCESS_GROUP}
}
