// Package weblisten binds Sluice's HTTP listeners (broker metrics and admin, exporter, alerting
// API, ticket service) the way the Prometheus ecosystem does: a --web.config.file in the format
// of github.com/prometheus/exporter-toolkit (TLS, client certificates, basic auth with bcrypt
// hashes, extra response headers) served by that library's web.Serve, so that Prometheus' and
// Grafana's scrape and data source configurations work unchanged.
//
// Without a web config a listener serving state-changing endpoints binds to loopback only: a
// non-loopback address is refused with an error naming the flag. Every listener says at start
// whether it is authenticated, loopback-only or open.
package weblisten

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
)

// Flag is the command-line flag of the web config file, as in node_exporter and Alertmanager.
const Flag = "--web.config.file"

// Options describe one HTTP listener.
type Options struct {
	// Name says what the listener serves, in messages: "alerting API", "broker metrics".
	Name string
	// Address is host:port; port 0 picks a free port.
	Address string
	// WebConfigFile is an exporter-toolkit web config; "" serves plain HTTP without
	// authentication.
	WebConfigFile string
	// ConfigField names where WebConfigFile is set, for messages; default Flag.
	ConfigField string
	// StateChanging says the listener serves endpoints that change state. Such a listener binds
	// to loopback only unless the web config authenticates (basic_auth_users, verified client
	// certificates) or OwnAuth says how else the service authenticates; Listen refuses any
	// other address with an error naming the flag.
	StateChanging bool
	// OwnAuth names the service's own authentication of the requests that need it, e.g.
	// "bearer tokens" or "user sessions and API tokens"; "" for none. Without TLS on a
	// non-loopback address the start message warns that credentials cross in clear text.
	OwnAuth string
}

// Listener is a bound HTTP listener that serves through exporter-toolkit.
type Listener struct {
	opts    Options
	ln      net.Listener
	cfg     web.Config
	mode    string
	logger  *slog.Logger
	headers map[string]string
}

// Listen validates the web config (TLS files and bcrypt hashes included), binds the address,
// refuses an unsafe combination with an error naming the flag, and logs how the listener is
// protected.
func Listen(opts Options, logger *slog.Logger) (*Listener, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	field := opts.ConfigField
	if field == "" {
		field = Flag
	}
	l := &Listener{opts: opts, logger: logger}
	if opts.WebConfigFile != "" {
		if err := web.Validate(opts.WebConfigFile); err != nil {
			return nil, fmt.Errorf("%s %s: %w", field, opts.WebConfigFile, err)
		}
		b, err := os.ReadFile(opts.WebConfigFile)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", field, err)
		}
		if err := yaml.Unmarshal(b, &l.cfg); err != nil {
			return nil, fmt.Errorf("%s %s: %w", field, opts.WebConfigFile, err)
		}
		l.headers = l.cfg.HTTPConfig.Header
	}
	ln, err := net.Listen("tcp", opts.Address)
	if err != nil {
		return nil, fmt.Errorf("%s listener %s: %w", opts.Name, opts.Address, err)
	}
	l.ln = ln
	loopback := isLoopback(ln.Addr())
	var auth []string
	if len(l.cfg.Users) > 0 {
		auth = append(auth, "basic auth")
	}
	if l.cfg.TLSConfig.ClientAuth == "RequireAndVerifyClientCert" {
		auth = append(auth, "client certificates")
	}
	if opts.OwnAuth != "" {
		auth = append(auth, opts.OwnAuth)
	}
	tlsOn := l.cfg.TLSConfig.IsEnabled()
	level := slog.LevelInfo
	switch {
	case len(auth) > 0:
		l.mode = "authenticated (" + strings.Join(auth, ", ") + ")"
		if !tlsOn && !loopback {
			// Behind a TLS-terminating proxy this is fine; otherwise credentials cross in clear.
			level = slog.LevelWarn
			l.mode += ", credentials in clear text without TLS in " + field
		}
	case loopback:
		l.mode = "loopback-only"
	case opts.StateChanging:
		_ = ln.Close()
		return nil, fmt.Errorf("%s: refusing to serve state-changing endpoints without authentication on non-loopback address %s: "+
			"give %s with basic_auth_users or client certificates (exporter-toolkit format), or listen on 127.0.0.1",
			opts.Name, ln.Addr(), field)
	default:
		level = slog.LevelWarn
		l.mode = "unauthenticated"
	}
	if tlsOn {
		l.mode += ", TLS"
	}
	logger.Log(context.Background(), level, opts.Name+" listening", "addr", ln.Addr().String(), "access", l.mode,
		"web_config", opts.WebConfigFile)
	return l, nil
}

// Addr is the bound address (useful with port 0).
func (l *Listener) Addr() string { return l.ln.Addr().String() }

// Mode says how the listener is protected: "authenticated (basic auth), TLS",
// "loopback-only", "unauthenticated" (read-only endpoints only).
func (l *Listener) Mode() string { return l.mode }

// BasicAuth says whether the web config requires basic auth now. exporter-toolkit reads the
// file at every request, so an edit takes effect at once; so does this answer, which reads it
// too. While the file does not parse (exporter-toolkit then answers 500), the config read at
// start answers.
func (l *Listener) BasicAuth() bool { return len(l.current().Users) > 0 }

// WebAuth says whether the web config authenticates every request now: basic auth users or
// verified client certificates.
func (l *Listener) WebAuth() bool {
	c := l.current()
	return len(c.Users) > 0 || c.TLSConfig.ClientAuth == "RequireAndVerifyClientCert"
}

// current is the web config as the file says now.
func (l *Listener) current() web.Config {
	if l.opts.WebConfigFile == "" {
		return web.Config{}
	}
	var c web.Config
	b, err := os.ReadFile(l.opts.WebConfigFile)
	if err == nil {
		err = yaml.Unmarshal(b, &c)
	}
	if err != nil {
		return l.cfg
	}
	return c
}

// Loopback says whether the listener accepts only local connections.
func (l *Listener) Loopback() bool { return isLoopback(l.ln.Addr()) }

// TLS says whether the listener serves HTTPS.
func (l *Listener) TLS() bool { return l.cfg.TLSConfig.IsEnabled() }

// Close closes the listener of a Listener never served.
func (l *Listener) Close() error { return l.ln.Close() }

// Serve serves srv on the listener through exporter-toolkit's web.Serve until srv is shut
// down; http.ErrServerClosed is returned as nil.
//
// bypass, when not nil, is asked about every request before basic auth: a request it accepts
// (one carrying the service's own credential, which the service's handler checks) skips
// exporter-toolkit's basic auth but still gets TLS and the configured headers. Without
// basic_auth_users every request reaches the handler anyway.
func (l *Listener) Serve(srv *http.Server, bypass func(*http.Request) bool) error {
	h := srv.Handler
	if h == nil {
		return errors.New("weblisten: server without handler")
	}
	if bypass != nil && l.opts.WebConfigFile != "" {
		// web.Serve wraps srv.Handler in its authenticating handler and then calls srv.Serve,
		// which calls BaseContext once before accepting connections: the place to put the
		// bypass in front of the wrapped handler.
		base := srv.BaseContext
		srv.BaseContext = func(ln net.Listener) context.Context {
			authed := srv.Handler
			srv.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if bypass(r) {
					for k, v := range l.headers {
						w.Header().Set(k, v)
					}
					h.ServeHTTP(w, r)
					return
				}
				authed.ServeHTTP(w, r)
			})
			if base != nil {
				return base(ln)
			}
			return context.Background()
		}
	}
	file := l.opts.WebConfigFile
	err := web.Serve(l.ln, srv, &web.FlagConfig{WebConfigFile: &file}, l.logger)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// isLoopback says whether a bound address accepts only local connections.
func isLoopback(a net.Addr) bool {
	ta, ok := a.(*net.TCPAddr)
	return ok && ta.IP.IsLoopback()
}

// CheckAddress tells, before binding, whether Listen would refuse addr for a state-changing
// listener without web config or own authentication: it is for validating configuration files,
// the error names field.
func CheckAddress(addr, field string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%s %q: %w", field, addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s %q is not a loopback address: give %s with authentication, or listen on 127.0.0.1", field, addr, Flag)
}
