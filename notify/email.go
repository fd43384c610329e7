package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"os"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
)

// email sends a plain-text mail through an SMTP server: STARTTLS first
// (required unless starttls: false), then AUTH PLAIN when a username is
// set. net/smtp's PlainAuth refuses to send the password over a
// connection that is not TLS, unless the server is on loopback.
type email struct {
	addr, host string
	from       string
	to         []string
	user, pass string
	starttls   bool
	roots      *x509.CertPool // nil: the system's
}

func newEmail(c config.Notifier, deps *Deps) (*email, error) {
	host, _, err := net.SplitHostPort(c.SMTP)
	if err != nil {
		return nil, fmt.Errorf("mail server %q: %w", c.SMTP, err)
	}
	m := &email{addr: c.SMTP, host: host, from: c.From, to: c.To, user: c.Username, starttls: c.StartTLS}
	if c.Username != "" {
		if m.pass, err = secret(deps, "smtp password", c.PasswordFile, c.PasswordEnv); err != nil {
			return nil, err
		}
	}
	if c.CAFile != "" {
		read := deps.ReadFile
		if read == nil {
			read = os.ReadFile
		}
		pem, err := read(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read ca_file: %w", err)
		}
		m.roots = x509.NewCertPool()
		if !m.roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read ca_file: no PEM certificate in %s", c.CAFile)
		}
	}
	return m, nil
}

func (m *email) Notify(ctx context.Context, e *events.Event) (bool, error) {
	msg, err := m.compose(render(e), time.Now())
	if err != nil {
		return false, err
	}
	if err := m.send(ctx, msg); err != nil {
		return smtpRetry(err), fmt.Errorf("send mail through %s: %w", m.addr, err)
	}
	return false, nil
}

// smtpRetry: a 4xx reply or a network problem may pass, a 5xx reply (a
// refused login, an unknown recipient) or a TLS problem will not.
func smtpRetry(err error) bool {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code/100 == 4
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

func (m *email) send(ctx context.Context, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", m.addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// Close the connection when ctx ends before the deadline (shutdown).
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, m.host)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("kapkan"); err != nil {
		return err
	}
	if m.starttls {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return errors.New("the server offers no STARTTLS (want starttls: false to send in clear)")
		}
		if err := c.StartTLS(&tls.Config{ServerName: m.host, RootCAs: m.roots, MinVersion: tls.VersionTLS12}); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if m.user != "" {
		if err := c.Auth(smtp.PlainAuth("", m.user, m.pass, m.host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	from, err := mail.ParseAddress(m.from)
	if err != nil {
		return fmt.Errorf("from %q: %w", m.from, err)
	}
	if err := c.Mail(from.Address); err != nil {
		return err
	}
	for _, t := range m.to {
		to, err := mail.ParseAddress(t)
		if err != nil {
			return fmt.Errorf("to %q: %w", t, err)
		}
		if err := c.Rcpt(to.Address); err != nil {
			return fmt.Errorf("rcpt %s: %w", to, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// compose writes the mail: headers, then the body in quoted-printable
// UTF-8, lines ending in CRLF.
func (m *email) compose(msg message, now time.Time) ([]byte, error) {
	from, err := mail.ParseAddress(m.from)
	if err != nil {
		return nil, fmt.Errorf("from %q: %w", m.from, err)
	}
	to := make([]string, len(m.to))
	for i, t := range m.to {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, fmt.Errorf("to %q: %w", t, err)
		}
		to[i] = a.String()
	}
	id := make([]byte, 12)
	_, _ = rand.Read(id)
	domain := "kapkan"
	if _, d, ok := strings.Cut(from.Address, "@"); ok {
		domain = d
	}
	var b bytes.Buffer
	hdr := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	hdr("From", from.String())
	hdr("To", strings.Join(to, ", "))
	hdr("Subject", mime.QEncoding.Encode("utf-8", msg.Title))
	hdr("Date", now.Format(time.RFC1123Z))
	hdr("Message-ID", "<"+hex.EncodeToString(id)+"@"+domain+">")
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	hdr("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(msg.Text(), "\n", "\r\n"))); err != nil {
		return nil, err
	}
	if err := qp.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
