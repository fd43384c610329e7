package mitigate

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// TestStateFileIsReadable: the state file is read by people too: & stays
// itself (not \u0026) and a TTL made odd by the flap penalty is rounded.
func TestStateFileIsReadable(t *testing.T) {
	file := filepath.Join(t.TempDir(), "m.json")
	f := newFixture(t, file, nil)
	match := flowspec.Match{Protocol: "tcp", TCPFlags: "syn&!ack"}
	if _, err := f.m.Ban(Request{Kind: flowspec.Discard, Target: netip.MustParsePrefix("203.0.113.9/32"),
		TTL: 62504560581 * time.Nanosecond, Reason: "syn & ack flood"}, match, t0); err != nil {
		t.Fatal(err)
	}
	f.m.Flush()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if strings.Contains(s, `\u0026`) || !strings.Contains(s, `"syn&!ack"`) || !strings.Contains(s, `"syn & ack flood"`) {
		t.Errorf("& escaped in the state file:\n%s", s)
	}
	if !strings.Contains(s, `"ttl": "1m2.505s"`) {
		t.Errorf("ttl not rounded to the millisecond:\n%s", s)
	}
}
