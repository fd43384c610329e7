package config

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPeerPasswords: each peer's password_file is read, trimmed, and a
// file that is missing, unreadable, empty or too long is an error at the
// key's line that never carries the password.
func TestPeerPasswords(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good", "  s3cret-md5\n")
	long := write("long", strings.Repeat("x", MaxPasswordLen+1))
	for _, tc := range []struct {
		name, file string
		want       string // the password, or a part of the error
		err        bool
	}{
		{"read and trimmed", good, "s3cret-md5", false},
		{"missing", filepath.Join(dir, "nope"), "cfg.yaml:8:24: mitigation.bgp.peers[0].password_file: open " + filepath.Join(dir, "nope") + ": no such file or directory", true},
		{"unreadable", dir, "is a directory", true},
		{"empty", write("empty", " \n"), "cfg.yaml:8:24: mitigation.bgp.peers[0].password_file: " + filepath.Join(dir, "empty") + " is empty", true},
		{"too long", long, fmt.Sprintf("is %d bytes long (want at most %d)", MaxPasswordLen+1, MaxPasswordLen), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf(`mitigation:
  bgp:
    asn: 65010
    router_id: 192.0.2.10
    peers:
      - address: 127.0.0.1
        asn: 65000
        password_file: %q
`, tc.file)
			cfg, err := Parse("cfg.yaml", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			pw, err := cfg.PeerPasswords()
			if tc.err {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("error %v, want one with %q", err, tc.want)
				}
				if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), strings.Repeat("x", 20)) {
					t.Errorf("the error shows the password: %v", err)
				}
				return
			}
			if err != nil || len(pw) != 1 || pw[0] != tc.want {
				t.Fatalf("passwords %q, %v; want [%q]", pw, err, tc.want)
			}
		})
	}
}
