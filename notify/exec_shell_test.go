package notify

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// TestExecNoShell: text an attacker can shape (labels, reasons, the
// hostgroup and the direction of an attack, carried in events) reaches
// the program literally, as stdin or as one argument each, and is never
// run by a shell: a shell would create the marker files. The program's
// own path, with a space and a quote in it, is not split either.
func TestExecNoShell(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's a dir")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	marker := func(n string) string { return filepath.Join(dir, "pwned-"+n) }
	hostile := []string{
		"$(touch " + marker("subst") + ")",
		"`touch " + marker("backtick") + "`",
		"; touch " + marker("semicolon"),
		"| touch " + marker("pipe"),
		"&& touch " + marker("and") + " #",
		"\ntouch " + marker("newline") + "\n",
		"' \"; touch " + marker("quotes") + "; echo '",
		"${IFS}touch${IFS}" + marker("ifs"),
	}
	for _, mode := range []string{"json", "fastnetmon"} {
		t.Run(mode, func(t *testing.T) {
			cmd, argvFile, stdinFile := script(t, "")
			spaced := filepath.Join(dir, "notify "+mode+".sh")
			if err := os.Rename(cmd, spaced); err != nil {
				t.Fatal(err)
			}
			c := notifierConfig("hook", "exec")
			c.Command, c.Mode = spaced, mode
			n, err := build(c, &Deps{})
			if err != nil {
				t.Fatal(err)
			}
			x := n.(*execNotifier)
			for i, h := range hostile {
				a := attackEvent(events.AttackStarted, uint64(100+i))
				a.Attack.Labels = []string{h}
				a.Attack.Hostgroup = h
				a.Attack.Direction = h
				a.Attack.Decider = h
				x.Observe(&a)
				up := mitigationEvent(events.MitigationAnnounced, uint64(100+i), flowspec.Blackhole, false)
				up.Mitigation.Reason = h
				down := mitigationEvent(events.MitigationWithdrawn, uint64(100+i), flowspec.Blackhole, false)
				for _, e := range []*events.Event{&a, &up, &down} {
					if !x.Handles(e.Kind) {
						continue
					}
					if _, err := n.Notify(context.Background(), e); err != nil {
						t.Fatalf("%q: %v", h, err)
					}
				}
			}
			left, _ := filepath.Glob(marker("*"))
			if len(left) > 0 {
				t.Fatalf("a shell ran attacker text: %v", left)
			}
			argv, stdin := readFile(t, argvFile), readFile(t, stdinFile)
			switch mode {
			case "json":
				// No argument at all; each hostile string is in the JSON.
				if strings.Trim(argv, "|\n") != "" {
					t.Errorf("json mode passed arguments: %q", argv)
				}
				for _, h := range hostile {
					if !strings.Contains(stdin, jsonString(h)) {
						t.Errorf("stdin lacks %s", jsonString(h))
					}
				}
			case "fastnetmon":
				// Four arguments a call, the direction one of them whole.
				if n := strings.Count(argv, "|1200000|ban|"); n != len(hostile) {
					t.Fatalf("%d bans recorded, want %d:\n%s", n, len(hostile), argv)
				}
				for _, h := range hostile {
					if !strings.Contains(argv, "203.0.113.7|"+h+"|1200000|ban|") {
						t.Errorf("direction %q is not one argument:\n%s", h, argv)
					}
				}
			}
		})
	}
}

// jsonString is s as it appears inside a JSON document.
func jsonString(s string) string {
	var b strings.Builder
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(s)
	return strings.TrimSuffix(b.String(), "\n")
}

// TestScrub: what a server echoes of a secret URL is removed from the
// error, and plain words stay.
func TestScrub(t *testing.T) {
	for _, tc := range []struct{ u, answer, want string }{
		{"https://api.telegram.org/bot123456:AAH-tok3n_x/sendMessage", `{"description":"Bad Request: chat not found","path":"/bot123456:AAH-tok3n_x/sendMessage"}`,
			`{"description":"Bad Request: chat not found","path":"<redacted>"}`},
		{"https://api.telegram.org/bot123456:AAH-tok3n_x/sendMessage", "token 123456:AAH-tok3n_x unknown in sendMessage",
			"token <redacted> unknown in sendMessage"},
		{"https://hooks.slack.com/services/T000/B000/XXXXsecretXXXX1", "no_team for T000/B000/XXXXsecretXXXX1", "no_team for T000/B000/<redacted>"},
		{"https://siem.example.net/kapkan?key=k3y-0f-the-hook&x=1", "bad key k3y-0f-the-hook", "bad key <redacted>"},
		{"https://user:pa55word-x@siem.example.net/kapkan", "who is pa55word-x?", "who is <redacted>?"},
		{"https://siem.example.net/kapkan", "invalid_payload", "invalid_payload"},
	} {
		if got := scrub(tc.answer, tc.u); got != tc.want {
			t.Errorf("scrub(%q, %q) = %q, want %q", tc.answer, tc.u, got, tc.want)
		}
	}
}
