package email

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"github.com/wneessen/go-mail"
	"go.uber.org/goleak"
)

// TestMain checks that no SMTP connection outlives its notification.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// received is one message as the SMTP server got it.
type received struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	authUser string
}

// smtpServer is a real SMTP server (github.com/emersion/go-smtp) that keeps what it receives.
type smtpServer struct {
	addr string
	// mechs are the SASL mechanisms offered (none: no AUTH); users the accepted passwords.
	mechs []string
	users map[string]string
	// rcptErr, when set, is the answer to RCPT TO.
	rcptErr *smtp.SMTPError

	mu  sync.Mutex
	got []received
}

type serverOpts struct {
	starttls bool // offer STARTTLS
	implicit bool // TLS from the first byte (SMTPS)
	auth     bool // offer AUTH PLAIN, user sluice / password s3cret
	rcptErr  *smtp.SMTPError
}

func startSMTP(t *testing.T, o serverOpts) *smtpServer {
	t.Helper()
	s := &smtpServer{rcptErr: o.rcptErr}
	if o.auth {
		s.mechs = []string{sasl.Plain}
		s.users = map[string]string{"sluice": "s3cret"}
	}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true // AUTH on 127.0.0.1 without TLS, as go-mail allows for localhost
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	var l net.Listener
	var err error
	if o.starttls || o.implicit {
		srv.TLSConfig = selfSigned(t)
	}
	if o.implicit {
		l, err = tls.Listen("tcp", "127.0.0.1:0", srv.TLSConfig)
	} else {
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	require.NoError(t, err)
	s.addr = l.Addr().String()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return s
}

func (s *smtpServer) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{s: s, c: c}, nil
}

func (s *smtpServer) messages() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

type session struct {
	s    *smtpServer
	c    *smtp.Conn
	cur  received
	user string
}

func (ss *session) AuthMechanisms() []string { return ss.s.mechs }

func (ss *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(identity, user, pass string) error {
		if want, ok := ss.s.users[user]; !ok || want != pass {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authentication credentials invalid"}
		}
		ss.user = user
		return nil
	}), nil
}

func (ss *session) Mail(from string, _ *smtp.MailOptions) error {
	if len(ss.s.mechs) > 0 && ss.user == "" {
		return smtp.ErrAuthRequired
	}
	_, isTLS := ss.c.TLSConnectionState()
	ss.cur = received{from: from, tls: isTLS, authUser: ss.user}
	return nil
}

func (ss *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if ss.s.rcptErr != nil {
		return ss.s.rcptErr
	}
	ss.cur.to = append(ss.cur.to, to)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	ss.cur.data = b
	ss.s.mu.Lock()
	ss.s.got = append(ss.s.got, ss.cur)
	ss.s.mu.Unlock()
	return nil
}

func (ss *session) Reset()        { ss.cur = received{} }
func (ss *session) Logout() error { return nil }

// selfSigned is a TLS configuration with a fresh certificate for 127.0.0.1.
func selfSigned(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}
}

func urp(resolved bool) *alert.Alert {
	start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	end := time.Now().Add(time.Hour)
	if resolved {
		end = start.Add(10 * time.Minute)
	}
	return alert.New(model.Alert{
		Labels: model.LabelSet{"alertname": "SluiceUnderReplicatedPartitions", "severity": "critical", "instance": "b1:9308", "topic": "<script>alert(1)</script>"},
		Annotations: model.LabelSet{
			"summary": "2 under-replicated partitions led by broker b1:9308", "description": "A follower is down.", "value": "2",
			"runbook_url": "https://example.com/runbooks/SluiceUnderReplicatedPartitions.md", "dashboard": "sluice-broker",
		},
		StartsAt: start, EndsAt: end, GeneratorURL: "http://alerting:9093/graph",
	}, time.Now(), false)
}

func notifyCtx() context.Context {
	ctx := notify.WithGroupKey(context.Background(), "{}:{alertname=\"SluiceUnderReplicatedPartitions\"}")
	return notify.WithReceiverName(ctx, "oncall")
}

func newNotifier(t *testing.T, s *smtpServer, mod func(*Config)) *Notifier {
	t.Helper()
	c := Config{
		Smarthost: s.addr, From: "sluice@example.com", To: []string{"oncall@example.com", "lead@example.com"},
		Hello: "sluice.test", TLSPolicy: TLSNone, InsecureSkipVerify: true, DashboardURL: "http://grafana:3000",
		SendResolved: true, Timeout: 10 * time.Second,
	}
	if mod != nil {
		mod(&c)
	}
	n, err := New(c)
	require.NoError(t, err)
	return n
}

// parts decodes a multipart/alternative message into its parts by content type.
func parts(t *testing.T, raw []byte) (*netmail.Message, map[string]string) {
	t.Helper()
	m, err := netmail.ReadMessage(bytes.NewReader(raw))
	require.NoError(t, err)
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	require.NoError(t, err)
	require.Equal(t, "multipart/alternative", mt)
	out := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err)
		var r io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "quoted-printable") {
			r = quotedprintable.NewReader(p)
		}
		b, err := io.ReadAll(r)
		require.NoError(t, err)
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		out[ct] = string(b)
	}
	return m, out
}

// TestMessage checks the email of a firing and of a resolved notification: subject, headers,
// a plain-text and an HTML part with the same facts, label values escaped in HTML.
func TestMessage(t *testing.T) {
	s := startSMTP(t, serverOpts{})
	n := newNotifier(t, s, nil)
	require.NoError(t, n.Notify(notifyCtx(), urp(false)).Err())
	require.NoError(t, n.Notify(notifyCtx(), urp(true)).Err())
	got := s.messages()
	require.Len(t, got, 2)
	require.Equal(t, "sluice@example.com", got[0].from)
	require.Equal(t, []string{"oncall@example.com", "lead@example.com"}, got[0].to)

	m, p := parts(t, got[0].data)
	require.Equal(t, "[FIRING:1] SluiceUnderReplicatedPartitions - 2 under-replicated partitions led by broker b1:9308", decodeHeader(t, m.Header.Get("Subject")))
	require.Contains(t, m.Header.Get("From"), "sluice@example.com")
	require.Contains(t, m.Header.Get("To"), "oncall@example.com")
	require.NotEmpty(t, m.Header.Get("Message-Id"))
	require.NotEmpty(t, m.Header.Get("Date"))
	require.Len(t, p, 2, "text/plain and text/html")
	text, html := p["text/plain"], p["text/html"]
	for _, want := range []string{
		"FIRING: SluiceUnderReplicatedPartitions", "2 under-replicated partitions led by broker b1:9308", "A follower is down.",
		"Value: 2", "Since: 2026-03-01T12:00:00Z", "instance=b1:9308", "severity=critical",
		"Runbook: https://example.com/runbooks/SluiceUnderReplicatedPartitions.md", "Dashboard: http://grafana:3000/d/sluice-broker",
		"Sent by sluice alerting to receiver oncall.",
	} {
		require.Contains(t, text, want)
	}
	for _, want := range []string{
		"<h3 style=\"color: #d32f2f\">FIRING: SluiceUnderReplicatedPartitions</h3>", "<b>2 under-replicated partitions led by broker b1:9308</b>",
		`<a href="https://example.com/runbooks/SluiceUnderReplicatedPartitions.md">Runbook</a>`, `<a href="http://grafana:3000/d/sluice-broker">Dashboard</a>`,
		`<a href="http://alerting:9093/graph">Source</a>`, "&lt;script&gt;alert(1)&lt;/script&gt;",
	} {
		require.Contains(t, html, want)
	}
	require.NotContains(t, html, "<script>")

	m, p = parts(t, got[1].data)
	require.Equal(t, "[RESOLVED] SluiceUnderReplicatedPartitions", decodeHeader(t, m.Header.Get("Subject")))
	require.Contains(t, p["text/plain"], "RESOLVED: SluiceUnderReplicatedPartitions")
	require.Contains(t, p["text/plain"], "From 2026-03-01T12:00:00Z to 2026-03-01T12:10:00Z")
	require.Contains(t, p["text/html"], "RESOLVED: SluiceUnderReplicatedPartitions")
}

func decodeHeader(t *testing.T, s string) string {
	t.Helper()
	d, err := new(mime.WordDecoder).DecodeHeader(s)
	require.NoError(t, err)
	return d
}

// TestTLSPolicy checks each TLS policy against servers with and without STARTTLS.
func TestTLSPolicy(t *testing.T) {
	for _, tc := range []struct {
		name    string
		server  serverOpts
		policy  string
		wantTLS bool
		fails   bool
	}{
		{name: "none ignores offered STARTTLS", server: serverOpts{starttls: true}, policy: TLSNone, wantTLS: false},
		{name: "none", server: serverOpts{}, policy: TLSNone, wantTLS: false},
		{name: "opportunistic uses STARTTLS", server: serverOpts{starttls: true}, policy: TLSOpportunistic, wantTLS: true},
		{name: "opportunistic without STARTTLS", server: serverOpts{}, policy: TLSOpportunistic, wantTLS: false},
		{name: "mandatory uses STARTTLS", server: serverOpts{starttls: true}, policy: TLSMandatory, wantTLS: true},
		{name: "mandatory refuses a server without STARTTLS", server: serverOpts{}, policy: TLSMandatory, fails: true},
		{name: "implicit", server: serverOpts{implicit: true}, policy: TLSImplicit, wantTLS: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSMTP(t, tc.server)
			n := newNotifier(t, s, func(c *Config) { c.TLSPolicy = tc.policy })
			v := n.Notify(notifyCtx(), urp(false))
			if tc.fails {
				require.Error(t, v.Err())
				require.Empty(t, s.messages(), "nothing sent in clear")
				return
			}
			require.NoError(t, v.Err())
			got := s.messages()
			require.Len(t, got, 1)
			require.Equal(t, tc.wantTLS, got[0].tls)
		})
	}
}

// TestAuthPlain checks SMTP AUTH PLAIN with the configured user and password over STARTTLS,
// that the password is never sent in clear, and that bad credentials are a failure not worth
// retrying.
func TestAuthPlain(t *testing.T) {
	for _, policy := range []string{TLSMandatory, TLSOpportunistic, TLSImplicit} {
		t.Run(policy, func(t *testing.T) {
			s := startSMTP(t, serverOpts{auth: true, starttls: policy != TLSImplicit, implicit: policy == TLSImplicit})
			n := newNotifier(t, s, func(c *Config) {
				c.TLSPolicy, c.Username, c.Password = policy, "sluice", "s3cret"
			})
			require.NoError(t, n.Notify(notifyCtx(), urp(false)).Err())
			got := s.messages()
			require.Len(t, got, 1)
			require.Equal(t, "sluice", got[0].authUser)
			require.True(t, got[0].tls)
		})
	}
	t.Run("never in clear", func(t *testing.T) {
		s := startSMTP(t, serverOpts{auth: true})
		n := newNotifier(t, s, func(c *Config) {
			c.TLSPolicy, c.Username, c.Password = TLSNone, "sluice", "s3cret"
		})
		v := n.Notify(notifyCtx(), urp(false))
		require.ErrorIs(t, v.Err(), mail.ErrNoSupportedAuthDiscovered)
		require.False(t, v.ShouldRetry(), "a configuration problem: %v", v.Err())
		require.Empty(t, s.messages())
	})
	t.Run("bad password", func(t *testing.T) {
		s := startSMTP(t, serverOpts{auth: true, starttls: true})
		n := newNotifier(t, s, func(c *Config) {
			c.TLSPolicy, c.Username, c.Password = TLSMandatory, "sluice", "wrong-password-xyz"
		})
		v := n.Notify(notifyCtx(), urp(false))
		require.Error(t, v.Err())
		require.False(t, v.ShouldRetry(), "%v", v.Err())
		require.NotContains(t, v.Err().Error(), "wrong-password-xyz", "the error (logged, and answered by the receiver test) never holds the password")
		require.Empty(t, s.messages())
	})
	t.Run("no credentials where required", func(t *testing.T) {
		s := startSMTP(t, serverOpts{auth: true})
		n := newNotifier(t, s, nil)
		v := n.Notify(notifyCtx(), urp(false))
		require.Error(t, v.Err())
		require.False(t, v.ShouldRetry(), "530 is permanent: %v", v.Err())
	})
}

// TestServerErrors checks which SMTP failures are reported as worth retrying.
func TestServerErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		err   *smtp.SMTPError
		retry bool
	}{
		{"mailbox unavailable 550", &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}, false},
		{"greylisted 451", &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 7, 1}, Message: "try again later"}, true},
		{"mailbox full 452", &smtp.SMTPError{Code: 452, EnhancedCode: smtp.EnhancedCode{4, 2, 2}, Message: "mailbox full"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startSMTP(t, serverOpts{rcptErr: tc.err})
			n := newNotifier(t, s, nil)
			v := n.Notify(notifyCtx(), urp(false))
			require.Error(t, v.Err())
			require.Equal(t, tc.retry, v.ShouldRetry(), "%v", v.Err())
		})
	}
	t.Run("connection refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := l.Addr().String()
		l.Close()
		n, err := New(Config{Smarthost: addr, From: "a@example.com", To: []string{"b@example.com"}, TLSPolicy: TLSNone, Timeout: 5 * time.Second})
		require.NoError(t, err)
		v := n.Notify(notifyCtx(), urp(false))
		require.Error(t, v.Err())
		require.True(t, v.ShouldRetry())
	})
}

// TestConfigErrors checks New refuses what can never work.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no port", Config{Smarthost: "mail.example.com", From: "a@x", To: []string{"b@x"}}, "smarthost"},
		{"bad port", Config{Smarthost: "mail.example.com:smtp", From: "a@x", To: []string{"b@x"}}, "port"},
		{"no from", Config{Smarthost: "mail.example.com:25", To: []string{"b@x"}}, "from and to"},
		{"no to", Config{Smarthost: "mail.example.com:25", From: "a@x"}, "from and to"},
		{"bad policy", Config{Smarthost: "mail.example.com:25", From: "a@x", To: []string{"b@x"}, TLSPolicy: "sometimes"}, "tls policy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			require.ErrorContains(t, err, tc.want)
		})
	}
}
