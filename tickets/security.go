package tickets

import (
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/gin-gonic/gin"
)

// contentSecurityPolicy allows this service's own scripts, styles and images
// only: no inline script, no framing, forms post here only.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// securityHeaders are sent with every answer, pages and API alike.
func securityHeaders(c *gin.Context) {
	h := c.Writer.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	c.Next()
}

// safeNext keeps a post-login redirect on this site: a relative path
// starting with one slash, without scheme, host, backslash or control
// characters (browsers drop tabs and newlines, so "/\t/evil.example/" would
// become "//evil.example/"). Anything else goes to the incidents.
func safeNext(next string) string {
	const home = "/incidents"
	if next == "" || len(next) > 2000 || next[0] != '/' {
		return home
	}
	for _, r := range next {
		if unicode.IsControl(r) || unicode.IsSpace(r) || r == '\\' {
			return home
		}
	}
	if strings.HasPrefix(next, "//") {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || !strings.HasPrefix(u.Path, "/") || strings.HasPrefix(u.Path, "//") {
		return home
	}
	return next
}

// Login throttling: after loginFreeFailures failed logins for a user name or
// from a client address, further attempts wait an exponentially growing delay
// (from loginBaseDelay, doubling, at most loginMaxDelay) counted from the
// last failure; attempts inside the delay are refused without checking the
// password. A success for the user clears the user's count. Counts are
// forgotten loginForget after the last failure.
const (
	loginFreeFailures = 5
	loginBaseDelay    = time.Second
	loginMaxDelay     = 15 * time.Minute
	loginForget       = time.Hour
	// loginTrackMax bounds the memory of the throttle: past it, the oldest
	// entries are dropped (the address key keeps throttling a flood).
	loginTrackMax = 100000
)

type loginRecord struct {
	failures int
	last     time.Time
}

// loginThrottle counts failed logins per user name and per client address.
type loginThrottle struct {
	mu   sync.Mutex
	recs map[string]*loginRecord
}

func newLoginThrottle() *loginThrottle { return &loginThrottle{recs: map[string]*loginRecord{}} }

func throttleDelay(failures int) time.Duration {
	if failures < loginFreeFailures {
		return 0
	}
	d := loginBaseDelay << min(failures-loginFreeFailures, 20)
	return min(d, loginMaxDelay)
}

// wait returns how long the user and address must still wait before the next
// attempt at now; 0 lets it through.
func (t *loginThrottle) wait(user, addr string, now time.Time) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	var w time.Duration
	for _, k := range []string{"user:" + strings.ToLower(user), "addr:" + addr} {
		r := t.recs[k]
		if r == nil {
			continue
		}
		if now.Sub(r.last) > loginForget {
			delete(t.recs, k)
			continue
		}
		if left := r.last.Add(throttleDelay(r.failures)).Sub(now); left > w {
			w = left
		}
	}
	return w
}

func (t *loginThrottle) fail(user, addr string, now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.recs) >= loginTrackMax {
		for k, r := range t.recs {
			if now.Sub(r.last) > loginForget || len(t.recs) >= loginTrackMax {
				delete(t.recs, k)
			}
			if len(t.recs) < loginTrackMax*9/10 {
				break
			}
		}
	}
	for _, k := range []string{"user:" + strings.ToLower(user), "addr:" + addr} {
		r := t.recs[k]
		if r == nil {
			r = &loginRecord{}
			t.recs[k] = r
		}
		r.failures++
		r.last = now
	}
}

func (t *loginThrottle) succeed(user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.recs, "user:"+strings.ToLower(user))
}
