package chaos

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

var (
	binOnce sync.Once
	binDir  string
	binPath string
	binErr  error
	binOut  []byte
)

// sluiceBin builds cmd/sluice once per test binary, or returns $SLUICE_BIN; it skips the test when
// the binary cannot be built, saying why.
func sluiceBin(t *testing.T) string {
	t.Helper()
	if bin := os.Getenv("SLUICE_BIN"); bin != "" {
		return bin
	}
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "sluice-chaos-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sluice")
		binOut, binErr = exec.Command("go", "build", "-o", binPath, "github.com/sluicemq/sluice/cmd/sluice").CombinedOutput()
	})
	if binErr != nil {
		t.Skipf("skipping: cannot build cmd/sluice (%v):\n%s", binErr, binOut)
	}
	return binPath
}
