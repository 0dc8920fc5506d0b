package testutil

import (
	"bytes"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-smtp"
)

// SMTPSink is a real SMTP server (emersion/go-smtp) on loopback that accepts every message
// without authentication and keeps it, for tests of what notifiers send.
type SMTPSink struct {
	// Addr is the server's host:port.
	Addr string

	mu   sync.Mutex
	msgs []SMTPMessage
}

// SMTPMessage is one message an SMTPSink received.
type SMTPMessage struct {
	Header mail.Header
	// Raw is the whole message as sent (headers and MIME body).
	Raw string
}

// StartSMTP starts an SMTPSink on 127.0.0.1 port 0, closed at cleanup.
func StartSMTP(tb testing.TB) *SMTPSink {
	tb.Helper()
	s := &SMTPSink{}
	srv := smtp.NewServer(s)
	srv.Domain = "localhost"
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.Addr = l.Addr().String()
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(l) }()
	tb.Cleanup(func() { _ = srv.Close(); <-done })
	return s
}

// Messages returns the messages received so far, oldest first.
func (s *SMTPSink) Messages() []SMTPMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]SMTPMessage(nil), s.msgs...)
}

// Subjects returns the Subject of every message received so far, oldest first.
func (s *SMTPSink) Subjects() []string {
	var out []string
	for _, m := range s.Messages() {
		out = append(out, m.Header.Get("Subject"))
	}
	return out
}

// Find returns the first message whose Subject contains subject.
func (s *SMTPSink) Find(subject string) (SMTPMessage, bool) {
	for _, m := range s.Messages() {
		if strings.Contains(m.Header.Get("Subject"), subject) {
			return m, true
		}
	}
	return SMTPMessage{}, false
}

// NewSession implements smtp.Backend.
func (s *SMTPSink) NewSession(*smtp.Conn) (smtp.Session, error) { return smtpSession{s}, nil }

type smtpSession struct{ s *SMTPSink }

func (smtpSession) Reset()                               {}
func (smtpSession) Logout() error                        { return nil }
func (smtpSession) Mail(string, *smtp.MailOptions) error { return nil }
func (smtpSession) Rcpt(string, *smtp.RcptOptions) error { return nil }

// Data keeps a message that parses as one (RFC 5322); anything else is refused.
func (ss smtpSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	m, err := mail.ReadMessage(bytes.NewReader(b))
	if err != nil {
		return err
	}
	ss.s.mu.Lock()
	ss.s.msgs = append(ss.s.msgs, SMTPMessage{Header: m.Header, Raw: string(b)})
	ss.s.mu.Unlock()
	return nil
}
