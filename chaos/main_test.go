package chaos

import (
	"os"
	"testing"

	"go.uber.org/goleak"

	"github.com/sluicemq/sluice/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBuilt()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goleak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// sluiceBin is the binary the process tests run; see testutil.SluiceBin.
func sluiceBin(t *testing.T) string {
	t.Helper()
	return testutil.SluiceBin(t)
}
