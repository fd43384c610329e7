package daemon_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// secretsConfig has one secret of every kind the configuration can name:
// API tokens (file and environment), a BGP peer's TCP-MD5 password, a
// Telegram bot token, an SMTP password, a webhook signing key, a Slack URL
// in a file and a webhook URL with a key in its query.
const secretsConfig = `ingest:
  sflow: {listen: "127.0.0.1:0", workers: 1}
  netflow: {listen: ""}
detection: {window: 2s, cooldown: 2s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24]
    thresholds:
      incoming: {pps: 20000}
api:
  listen: "127.0.0.1:0"
  tokens:
    - {name: ops, scope: operate, token_file: %[1]s/api.token}
    - {name: noc, scope: read, token_env: KAPKAN_TEST_READ_TOKEN}
dry_run: false
mitigation:
  state_file: ""
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers: [{address: 127.0.0.1, port: %[4]d, asn: 65000, families: [ipv4-unicast], password_file: %[1]s/bgp.password}]
store: {path: ""}
notify:
  - {name: tg, type: telegram, bot_token_env: KAPKAN_TEST_BOT_TOKEN, chat_id: "-100", api_url: "%[2]s", retries: 0, timeout: 2s}
  - {name: mail, type: email, smtp: "%[3]s", from: k@example.net, to: [noc@example.net], username: kapkan, password_file: %[1]s/smtp.password, retries: 0, timeout: 2s}
  - {name: hook, type: webhook, url: "%[2]s/hook?key=URL-QUERY-S3CRET", secret_file: %[1]s/hook.secret, retries: 0, timeout: 2s}
  - {name: chat, type: slack, url_file: %[1]s/slack.url, retries: 0, timeout: 2s}
`

// TestSecretsNeverShown runs a daemon whose notifiers all fail against
// servers that refuse them (so their errors are logged), at debug level,
// and reads it through the API with good and bad tokens; then a reload
// with secrets written in the file is refused. No secret is in the log,
// in any API answer, or in the reload's error.
func TestSecretsNeverShown(t *testing.T) {
	dir := t.TempDir()
	secrets := map[string]string{
		"api.token":     "API-OPERATE-S3CRET",
		"smtp.password": "SMTP-PASSWORD-S3CRET",
		"hook.secret":   "WEBHOOK-HMAC-S3CRET",
		"bgp.password":  "BGP-MD5-S3CRET",
	}
	// Every HTTP notifier posts to a server that says no, echoing what it
	// was sent; the mail server closes at once.
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		http.Error(w, "refused "+r.URL.String()+" "+string(body), http.StatusBadRequest)
	}))
	defer web.Close()
	secrets["slack.url"] = web.URL + "/services/SLACK-URL-S3CRET"
	for name, s := range secrets {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	smtp, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer smtp.Close()
	go func() {
		for {
			c, err := smtp.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "421 closing\r\n")
			c.Close()
		}
	}()
	// The BGP peer: a port where nobody answers (the session retries,
	// with its password, in the background).
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	router := closed.Addr().(*net.TCPAddr).Port
	closed.Close()
	t.Setenv("KAPKAN_TEST_READ_TOKEN", "API-READ-S3CRET")
	t.Setenv("KAPKAN_TEST_BOT_TOKEN", "123456:BOT-TOKEN-S3CRET")
	all := []string{"S3CRET"} // every secret above holds it
	path := filepath.Join(dir, "kapkan.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(secretsConfig, dir, web.URL, smtp.Addr(), router)), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	logs := &testutil.LogLines{}
	d, err := daemon.New(cfg, daemon.Deps{Logger: slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), ConfigPath: path})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	}()
	api := "http://" + d.APIAddr().String()

	// An attack, so that every notifier tries and fails.
	daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, netip.MustParseAddr("203.0.113.5"), 3*time.Second, 5)
	deadline := time.Now().Add(20 * time.Second)
	for {
		failed := 0
		for _, ch := range []string{"tg", "mail", "hook", "chat"} {
			if strings.Contains(logs.All(), `"channel":"`+ch+`"`) {
				failed++
			}
		}
		if failed == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the notifiers did not all fail (so this test would prove nothing); log:\n%s", logs.All())
		}
		time.Sleep(100 * time.Millisecond)
	}

	var answers []string
	call := func(method, url, token string, want int) string {
		t.Helper()
		req, _ := http.NewRequest(method, api+url, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Errorf("%s %s: %d %s, want %d", method, url, resp.StatusCode, body, want)
		}
		answers = append(answers, fmt.Sprintf("%s %s: %v %s", method, url, resp.Header, body))
		return string(body)
	}
	conf := call("GET", "/api/v1/config", "API-READ-S3CRET", 200)
	if !strings.Contains(conf, config.RedactedValue) || !strings.Contains(conf, "KAPKAN_TEST_BOT_TOKEN") {
		t.Errorf("the configuration is not shown redacted (webhook URL replaced, variable names kept): %s", conf)
	}
	call("GET", "/api/v1/config", "API-READ-S3CRET-GUESS", 401)
	call("POST", "/api/v1/rules/reload", "API-READ-S3CRET", 403)
	call("GET", "/api/v1/attacks", "API-OPERATE-S3CRET", 200)
	call("GET", "/api/v1/rules", "API-OPERATE-S3CRET", 200)
	call("GET", "/api/v1/bgp", "API-OPERATE-S3CRET", 200)
	call("GET", "/api/v1/mitigations", "API-OPERATE-S3CRET", 200)

	// A reload of a file with secrets written in it, one in a URL that
	// does not parse: refused, and the error shows none of them.
	bad := fmt.Sprintf(secretsConfig, dir, web.URL, smtp.Addr(), router) +
		"  - {name: inline, type: email, smtp: \"127.0.0.1:25\", from: a@b.c, to: [d@e.f], username: u, password: INLINE-PASSWORD-S3CRET}\n" +
		"  - {name: inline2, type: webhook, url: \"hxxp://INLINE-URL-S3CRET@x\", secret: INLINE-HMAC-S3CRET}\n" +
		"  - {name: inline3, type: telegram, chat_id: \"1\", bot_token: INLINE-BOT-S3CRET}\n" +
		"store: {path: \"\", clickhouse: {dsn: \"clickhouse://u:DSN-PASSWORD-S3CRET@[::1\"}}\n"
	bad = strings.Replace(bad, "store: {path: \"\"}\n", "", 1)
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	refused := call("POST", "/api/v1/config/reload", "API-OPERATE-S3CRET", 422)
	for _, key := range []string{"notify[4].password", "notify[5].url", "notify[5].secret", "notify[6].bot_token", "store.clickhouse.dsn"} {
		if !strings.Contains(refused, key) {
			t.Errorf("the refused reload does not name %s (so this test would prove nothing): %s", key, refused)
		}
	}
	_, loadErr := config.Load(path)
	if loadErr == nil {
		t.Fatal("the bad file loads")
	}
	// A reload whose BGP password file holds too long a password.
	long := filepath.Join(dir, "bgp.long")
	if err := os.WriteFile(long, []byte("BGP-LONG-S3CRET"+strings.Repeat("x", 80)), 0o600); err != nil {
		t.Fatal(err)
	}
	good := strings.Replace(fmt.Sprintf(secretsConfig, dir, web.URL, smtp.Addr(), router), dir+"/bgp.password", long, 1)
	if err := os.WriteFile(path, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	if refused := call("POST", "/api/v1/config/reload", "API-OPERATE-S3CRET", 422); !strings.Contains(refused, "mitigation.bgp.peers[0].password_file") {
		t.Errorf("the refused reload does not name the password file (so this test would prove nothing): %s", refused)
	}

	for _, s := range all {
		if i := strings.Index(logs.All(), s); i >= 0 {
			l := logs.All()
			t.Errorf("a secret is in the log: …%s…", l[max(0, i-300):min(len(l), i+100)])
		}
		for _, a := range answers {
			if strings.Contains(a, s) {
				t.Errorf("a secret is in an API answer: %s", a)
			}
		}
		if strings.Contains(loadErr.Error(), s) {
			t.Errorf("a secret is in the configuration's errors:\n%v", loadErr)
		}
	}
}
