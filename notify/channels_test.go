package notify

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

func TestTelegram(t *testing.T) {
	var got struct {
		path string
		body map[string]any
		ct   string
	}
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.path, got.ct = r.URL.Path, r.Header.Get("Content-Type")
		got.body = nil
		_ = json.NewDecoder(r.Body).Decode(&got.body)
		w.WriteHeader(status)
		if status == http.StatusTooManyRequests {
			io.WriteString(w, `{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 3","parameters":{"retry_after":3}}`)
			return
		}
		io.WriteString(w, `{"ok":true,"result":{}}`)
	}))
	defer srv.Close()

	c := notifierConfig("tg", "telegram")
	c.BotTokenEnv, c.ChatID, c.APIURL = "TG_TOKEN", "-100123", srv.URL
	n, err := build(c, &Deps{Getenv: env(map[string]string{"TG_TOKEN": "123:secret"})})
	if err != nil {
		t.Fatal(err)
	}
	e := attackEvent(events.AttackStarted, 42)
	if retry, err := n.Notify(context.Background(), &e); err != nil {
		t.Fatalf("notify: retry %v, %v", retry, err)
	}
	if got.path != "/bot123:secret/sendMessage" || got.ct != "application/json" {
		t.Errorf("posted to %s as %s, want /bot123:secret/sendMessage as application/json", got.path, got.ct)
	}
	if got.body["chat_id"] != "-100123" {
		t.Errorf("chat_id = %v", got.body["chat_id"])
	}
	text, _ := got.body["text"].(string)
	for _, want := range []string{"Attack started on 203.0.113.7 (incoming)", "hostgroup: customers",
		"trigger: pps 1200000 over threshold 100000", "rates: mbps 951, pps 1200000", "labels: syn-flood",
		"vector: proto tcp tcp-flags syn&!ack", "action: blackhole (ladder default, step 1)"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if _, ok := got.body["parse_mode"]; ok {
		t.Error("parse_mode set: the text is plain")
	}

	status = http.StatusTooManyRequests
	retry, err := n.Notify(context.Background(), &e)
	ra, ok := errors.AsType[*RetryAfterError](err)
	if !retry || !ok || ra.After != 3*time.Second {
		t.Errorf("429: retry %v, err %v; want a retry after 3s", retry, err)
	}
	if err != nil && strings.Contains(err.Error(), "secret") {
		t.Errorf("the error shows the token: %v", err)
	}
	status = http.StatusBadRequest
	if retry, err := n.Notify(context.Background(), &e); retry || err == nil {
		t.Errorf("400: retry %v, err %v; want a failure not retried", retry, err)
	}
	srv.Close()
	retry, err = n.Notify(context.Background(), &e)
	if !retry || err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("server down: retry %v, err %v; want a retry, and no token in the error", retry, err)
	}
}

func TestSlack(t *testing.T) {
	var body struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text struct{ Type, Text string }
		} `json:"blocks"`
	}
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/services/T000/B000/XXX" {
			http.NotFound(w, r)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			http.Error(w, "invalid_payload", http.StatusBadRequest)
			return
		}
		if fail {
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer srv.Close()
	urlFile := filepath.Join(t.TempDir(), "slack.url")
	if err := os.WriteFile(urlFile, []byte(srv.URL+"/services/T000/B000/XXX\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := notifierConfig("noc-slack", "slack")
	c.URLFile = urlFile
	n, err := build(c, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := mitigationEvent(events.MitigationAnnounced, 42, flowspec.Discard, true)
	if _, err := n.Notify(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[DRY-RUN] Mitigation announced: flowspec-discard on 203.0.113.7", "reason: syn &amp; ack flood",
		"match: proto udp src-port 53", "ttl: 10m0s, until 2026-03-01T12:10:00Z"} {
		if !strings.Contains(body.Text, want) {
			t.Errorf("text lacks %q:\n%s", want, body.Text)
		}
	}
	if len(body.Blocks) != 2 || body.Blocks[0].Type != "header" || body.Blocks[0].Text.Type != "plain_text" ||
		!strings.HasPrefix(body.Blocks[0].Text.Text, DryRunMark) || body.Blocks[1].Text.Type != "mrkdwn" {
		t.Errorf("blocks = %+v", body.Blocks)
	}
	fail = true
	if retry, err := n.Notify(context.Background(), &e); !retry || err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("500: retry %v, err %v; want a retry", retry, err)
	}
}

func TestWebhook(t *testing.T) {
	key := []byte("s3cret")
	type received struct {
		sig  string
		body []byte
	}
	got := make(chan received, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- received{r.Header.Get(SignatureHeader), b}
	}))
	defer srv.Close()
	secretFile := filepath.Join(t.TempDir(), "webhook.secret")
	if err := os.WriteFile(secretFile, append(key, '\n'), 0o600); err != nil {
		t.Fatal(err)
	}
	c := notifierConfig("siem", "webhook")
	c.URL, c.SecretFile = srv.URL+"/kapkan", secretFile
	n, err := build(c, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := mitigationEvent(events.MitigationAnnounced, 42, flowspec.Blackhole, false)
	if _, err := n.Notify(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	r := <-got
	// The receiver's check, written independently of Sign.
	mac := hmac.New(sha256.New, key)
	mac.Write(r.body)
	want, err := hex.DecodeString(strings.TrimPrefix(r.sig, "sha256="))
	if !strings.HasPrefix(r.sig, "sha256=") || err != nil || !hmac.Equal(want, mac.Sum(nil)) {
		t.Errorf("signature %q does not verify", r.sig)
	}
	if Sign([]byte("other"), r.body) == r.sig {
		t.Error("another key gives the same signature")
	}
	var doc struct {
		Version int             `json:"version"`
		Event   json.RawMessage `json:"event"`
	}
	if err := json.Unmarshal(r.body, &doc); err != nil || doc.Version != 1 {
		t.Fatalf("body %s: version %d, %v", r.body, doc.Version, err)
	}
	if want := string(events.AppendJSON(nil, &e)); string(doc.Event) != want {
		t.Errorf("event = %s\nwant  %s", doc.Event, want)
	}
	if !strings.Contains(string(r.body), `"syn & ack flood"`) {
		t.Errorf("& escaped in %s", r.body)
	}

	// Without a secret, no signature.
	c.SecretFile = ""
	n, _ = build(c, &Deps{})
	if _, err := n.Notify(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r.sig != "" {
		t.Errorf("unsigned webhook sent %s %q", SignatureHeader, r.sig)
	}
}

// smtpBackend records what a go-smtp server received.
type smtpBackend struct {
	mu     sync.Mutex
	tls    bool
	user   string
	from   string
	to     []string
	data   []byte
	authed bool
}

func (b *smtpBackend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &smtpSession{b: b, c: c}, nil
}

type smtpSession struct {
	b *smtpBackend
	c *smtp.Conn
}

func (s *smtpSession) AuthMechanisms() []string { return []string{sasl.Plain} }
func (s *smtpSession) Auth(mech string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(identity, username, password string) error {
		if username != "kapkan" || password != "pw0rd" {
			return smtp.ErrAuthFailed
		}
		s.b.mu.Lock()
		defer s.b.mu.Unlock()
		s.b.user, s.b.authed = username, true
		_, s.b.tls = s.c.TLSConnectionState()
		return nil
	}), nil
}
func (s *smtpSession) Mail(from string, _ *smtp.MailOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	if !s.b.authed {
		return smtp.ErrAuthRequired
	}
	s.b.from = from
	return nil
}
func (s *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.to = append(s.b.to, to)
	return nil
}
func (s *smtpSession) Data(r io.Reader) error {
	d, err := io.ReadAll(r)
	s.b.mu.Lock()
	defer s.b.mu.Unlock()
	s.b.data = d
	return err
}
func (s *smtpSession) Reset()        {}
func (s *smtpSession) Logout() error { return nil }

// selfSigned makes a certificate for 127.0.0.1 and its PEM.
func selfSigned(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kapkan test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: k}, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// smtpServer starts a go-smtp server on loopback, with STARTTLS when
// cert is set; AUTH only over TLS.
func smtpServer(t *testing.T, be *smtpBackend, cert *tls.Certificate) string {
	t.Helper()
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 5*time.Second, 5*time.Second
	if cert != nil {
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{*cert}}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

func TestEmail(t *testing.T) {
	cert, certPEM := selfSigned(t)
	be := &smtpBackend{}
	addr := smtpServer(t, be, &cert)
	dir := t.TempDir()
	caFile, pwFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "smtp.password")
	if err := os.WriteFile(caFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("pw0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := notifierConfig("noc-mail", "email")
	c.SMTP, c.From, c.To = addr, "Kapkan <kapkan@example.net>", []string{"noc@example.net", "Oncall <oncall@example.net>"}
	c.Username, c.PasswordFile, c.CAFile = "kapkan", pwFile, caFile
	n, err := build(c, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := attackEvent(events.AttackStarted, 42)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if retry, err := n.Notify(ctx, &e); err != nil {
		t.Fatalf("retry %v: %v", retry, err)
	}
	be.mu.Lock()
	defer be.mu.Unlock()
	if !be.tls || be.user != "kapkan" {
		t.Errorf("auth over TLS %v as %q, want over TLS as kapkan", be.tls, be.user)
	}
	if be.from != "kapkan@example.net" || strings.Join(be.to, ",") != "noc@example.net,oncall@example.net" {
		t.Errorf("envelope from %q to %q", be.from, be.to)
	}
	msg, err := mail.ReadMessage(strings.NewReader(string(be.data)))
	if err != nil {
		t.Fatalf("%v in\n%s", err, be.data)
	}
	for k, want := range map[string]string{
		"From": `"Kapkan" <kapkan@example.net>`, "Subject": "Attack started on 203.0.113.7 (incoming)",
		"Content-Type": "text/plain; charset=utf-8", "Content-Transfer-Encoding": "quoted-printable",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if to := msg.Header.Get("To"); !strings.Contains(to, "<noc@example.net>") || !strings.Contains(to, `"Oncall" <oncall@example.net>`) {
		t.Errorf("To: %q", to)
	}
	if msg.Header.Get("Date") == "" || msg.Header.Get("Message-ID") == "" {
		t.Error("no Date or Message-ID")
	}
	text, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if !strings.Contains(string(text), "hostgroup: customers\r\n") || !strings.Contains(string(text), "vector: proto tcp tcp-flags syn&!ack") {
		t.Errorf("body:\n%s", text)
	}

	// A wrong password is refused for good; a server without STARTTLS is
	// refused before anything is sent.
	wrong := filepath.Join(dir, "wrong.password")
	if err := os.WriteFile(wrong, []byte("wrong"), 0o600); err != nil {
		t.Fatal(err)
	}
	c2 := c
	c2.PasswordFile = wrong
	n2, err := build(c2, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if retry, err := n2.Notify(ctx, &e); err == nil || retry {
		t.Errorf("wrong password: retry %v, err %v; want a failure not retried", retry, err)
	}
	plain := smtpServer(t, &smtpBackend{}, nil)
	c.SMTP = plain
	n3, err := build(c, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n3.Notify(ctx, &e); err == nil || !strings.Contains(err.Error(), "no STARTTLS") {
		t.Errorf("server without STARTTLS: %v", err)
	}
}

// script writes an executable /bin/sh script that records its argv and
// stdin next to itself, then runs body.
func script(t *testing.T, body string) (path, argvFile, stdinFile string) {
	t.Helper()
	dir := t.TempDir()
	path = filepath.Join(dir, "notify_about_attack.sh")
	argvFile, stdinFile = path+".argv", path+".stdin"
	s := "#!/bin/sh\nprintf '%s|' \"$@\" >> " + argvFile + "\necho >> " + argvFile + "\ncat >> " + stdinFile + "\necho --- >> " + stdinFile + "\n" + body + "\n"
	if err := os.WriteFile(path, []byte(s), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, argvFile, stdinFile
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	return string(b)
}

func TestExecFastNetMon(t *testing.T) {
	cmd, argvFile, stdinFile := script(t, "")
	c := notifierConfig("legacy-script", "exec")
	c.Command, c.Mode = cmd, "fastnetmon"
	n, err := build(c, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	x := n.(*execNotifier)
	if x.Handles(events.AttackStarted) || !x.Handles(events.MitigationAnnounced) || !x.Handles(events.MitigationWithdrawn) {
		t.Error("a fastnetmon script handles announced and withdrawn mitigations only")
	}
	started := attackEvent(events.AttackStarted, 42)
	x.Observe(&started)
	ctx := context.Background()
	// The ladder: rate-limit, then discard replaces it, then the end.
	steps := []events.Event{
		mitigationEvent(events.MitigationAnnounced, 42, flowspec.RateLimit, false), // ban
		mitigationEvent(events.MitigationAnnounced, 42, flowspec.Discard, false),   // nothing
		mitigationEvent(events.MitigationWithdrawn, 42, flowspec.RateLimit, false), // nothing
		mitigationEvent(events.MitigationAnnounced, 42, flowspec.Blackhole, true),  // dry-run: nothing
		mitigationEvent(events.MitigationWithdrawn, 42, flowspec.Discard, false),   // unban
	}
	for i := range steps {
		if _, err := n.Notify(ctx, &steps[i]); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	if got, want := readFile(t, argvFile), "203.0.113.7|incoming|1200000|ban|\n203.0.113.7|incoming|1200000|unban|\n"; got != want {
		t.Errorf("argv:\n%s\nwant:\n%s", got, want)
	}
	stdin := readFile(t, stdinFile)
	for _, want := range []string{"IP: 203.0.113.7\n", "Action: ban\n", "Attack direction: incoming\n", "Attack power: 1200000 packets per second\n",
		"Attack type: syn-flood\n", "Total incoming traffic: 951 mbps\n", "Attack vector: proto tcp tcp-flags syn&!ack\n",
		"Flow sample: 2000 records\n", "Mitigation: flowspec-ratelimit\n", "Action: unban\n"} {
		if !strings.Contains(stdin, want) {
			t.Errorf("stdin lacks %q:\n%s", want, stdin)
		}
	}
}

func TestExecJSON(t *testing.T) {
	cmd, argvFile, stdinFile := script(t, "")
	c := notifierConfig("hook", "exec")
	c.Command, c.Mode = cmd, "json"
	n, err := build(c, &Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := attackEvent(events.AttackEnded, 42)
	if _, err := n.Notify(context.Background(), &e); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, argvFile); got != "|\n" { // printf with no argument
		t.Errorf("argv %q, want none", got)
	}
	if got, want := readFile(t, stdinFile), string(envelope(&e))+"\n---\n"; got != want {
		t.Errorf("stdin:\n%s\nwant:\n%s", got, want)
	}
}

func TestExecFailure(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		timeout    time.Duration
		want       string
	}{
		{"exit status", "echo 'cannot reach router' >&2; exit 3", time.Second, "exit status 3: cannot reach router"},
		{"timeout", "exec sleep 10", 200 * time.Millisecond, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cmd, _, _ := script(t, tc.body)
			c := notifierConfig("hook", "exec")
			c.Command, c.Mode = cmd, "json"
			n, err := build(c, &Deps{})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
			defer cancel()
			e := attackEvent(events.AttackStarted, 1)
			start := time.Now()
			retry, err := n.Notify(ctx, &e)
			if retry || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("retry %v, err %v; want no retry and %q", retry, err, tc.want)
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %s", d)
			}
		})
	}
	c := notifierConfig("hook", "exec")
	c.Command, c.Mode = "/nonexistent/notify.sh", "json"
	if err := Check([]config.Notifier{c}, Deps{}); err == nil || !strings.Contains(err.Error(), "notifier hook") {
		t.Errorf("missing command: %v", err)
	}
}
