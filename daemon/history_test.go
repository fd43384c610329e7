package daemon_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest/demo"
	"github.com/kapkan-io/kapkan/internal/testutil"
	"github.com/kapkan-io/kapkan/store/clickhouse"
)

// TestHistory: with the embedded store (the test configuration's default)
// and with ClickHouse (a real server on loopback), an attack the daemon
// detects is in the history: listed by a history query with its labels,
// and its hostgroup has a traffic series.
func TestHistory(t *testing.T) {
	ch := testutil.StartClickHouse(t)
	for _, tc := range []struct{ name, store string }{
		{"embedded", ""},
		{"clickhouse", fmt.Sprintf("store: {path: \"\", clickhouse: {dsn: %q}}\n", ch.DSN("kapkan_daemon_test"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, logs := daemontest.Start(t, daemontest.Config(t, tc.store), "")
			daemontest.SendAttack(t, d.FlowAddrs()[0], demo.DNSAmp, netip.MustParseAddr("203.0.113.5"), 3*time.Second, 5)
			api := "http://" + d.APIAddr().String()
			var got struct {
				Attacks []struct {
					ID     uint64   `json:"id"`
					Target string   `json:"target"`
					Labels []string `json:"labels"`
				} `json:"attacks"`
			}
			waitFor(t, 10*time.Second, func() bool {
				got.Attacks = nil
				getJSON(t, api+"/api/v1/attacks?from=1h", &got)
				return len(got.Attacks) == 1
			}, func() string { return "the attack is not in the history; log:\n" + logs.All() })
			if got.Attacks[0].Target != "203.0.113.5/32" || !strings.Contains(strings.Join(got.Attacks[0].Labels, ","), "dns-amplification") {
				t.Errorf("history: %+v", got)
			}
			var series struct {
				Incoming []json.RawMessage `json:"incoming"`
			}
			waitFor(t, 10*time.Second, func() bool {
				getJSON(t, api+"/api/v1/traffic?hostgroup=customers&from=1h", &series)
				return len(series.Incoming) > 0
			}, func() string { return "no traffic series for the hostgroup" })
			if tc.name != "clickhouse" {
				return
			}
			// ClickHouse also keeps the attack's raw flow sample.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := clickhouse.Open(ctx, ch.DSN("kapkan_daemon_test"), clickhouse.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var recs []flow.Record
			waitFor(t, 10*time.Second, func() bool {
				recs, err = s.Sample(ctx, got.Attacks[0].ID)
				return err == nil && len(recs) > 0
			}, func() string {
				return fmt.Sprintf("no raw sample for attack %d in ClickHouse (%v)", got.Attacks[0].ID, err)
			})
			if recs[0].SrcPort != 53 || recs[0].DstAddr() != netip.MustParseAddr("203.0.113.5") {
				t.Errorf("raw sample record %+v, want a DNS answer to 203.0.113.5", recs[0])
			}
		})
	}
}
