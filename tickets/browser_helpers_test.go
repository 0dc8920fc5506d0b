package tickets

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"
)

// chromiumPath finds Debian's chromium (apt-get install -y chromium), or
// $SLUICE_CHROMIUM.
func chromiumPath() string {
	if p := os.Getenv("SLUICE_CHROMIUM"); p != "" {
		return p
	}
	for _, p := range []string{"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("chromium")
	return p
}

// screenshotDir is where TestBrowser saves its screenshots: $SLUICE_SCREENSHOTS,
// relative to the repository root when relative (SLUICE_SCREENSHOTS=docs/screenshots
// refreshes the ones kept in docs/), else a temporary directory.
func screenshotDir(t *testing.T) string {
	dir := os.Getenv("SLUICE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if !filepath.IsAbs(dir) {
		root, err := filepath.Abs("..")
		require.NoError(t, err)
		for ; ; root = filepath.Dir(root) {
			if _, err := os.Stat(filepath.Join(root, "go.mod")); err == nil {
				break
			}
			require.NotEqual(t, root, filepath.Dir(root), "no go.mod above the test's directory")
		}
		dir = filepath.Join(root, dir)
	}
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// chromium is a headless chromium for a UI test. Its context ends at cleanup; a test bounds its
// actions with a timeout of its own, taken when its fixture is up.
type chromium struct {
	ctx   context.Context
	shots string
}

// startChromium prepares Debian's chromium (started by the first action) at 1280x900 and the
// screenshot directory; without chromium the test is skipped.
func startChromium(t *testing.T) *chromium {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		t.Skip("no chromium: apt-get install -y chromium, or set SLUICE_CHROMIUM")
	}
	shots := screenshotDir(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.WindowSize(1280, 900), chromedp.Flag("disable-dev-shm-usage", true))
	actx, acancel := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); acancel() })
	return &chromium{ctx: ctx, shots: shots}
}

// shot saves a full-page screenshot as name in the screenshot directory.
func (b *chromium) shot(name string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return chromedp.Void{}, err
		}
		return chromedp.Void{}, os.WriteFile(filepath.Join(b.shots, name), buf, 0o644)
	}
}

// textOf reads the text of the element sel into dst.
func textOf(sel chromedp.CSS, dst *string) chromedp.Action[chromedp.Void] {
	return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		v, err := chromedp.Text(sel)(ctx, tg)
		*dst = v
		return chromedp.Void{}, err
	}
}
