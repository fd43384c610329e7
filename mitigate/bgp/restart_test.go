package bgp

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestPeerGracefulRestartSettings: what the speaker asks GoBGP for, per
// peer: graceful restart with the Restart State and forwarding bits (every
// start is a restart), its time (120 s by default), long-lived graceful
// restart only when a stale time is set, and the TCP-MD5 password.
func TestPeerGracefulRestartSettings(t *testing.T) {
	addr := netip.MustParseAddr("127.0.0.1")
	for _, tc := range []struct {
		name            string
		peer            Peer
		gr              bool
		restart, llTime uint32
	}{
		{"off", Peer{Address: addr, ASN: 65000, Families: []string{"ipv4-unicast"}}, false, 0, 0},
		{"default time", Peer{Address: addr, ASN: 65000, Families: []string{"ipv4-unicast"}, GracefulRestart: true}, true, 120, 0},
		{"long-lived", Peer{Address: addr, ASN: 65000, Families: []string{"ipv4-unicast", "ipv4-flowspec"}, GracefulRestart: true,
			RestartTime: 30 * time.Second, LongLivedStaleTime: time.Hour, Password: "pw"}, true, 30, 3600},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), Peers: []Peer{tc.peer}}, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			ap := s.apiPeer(tc.peer)
			if ap.Conf.AuthPassword != tc.peer.Password {
				t.Errorf("password not passed to GoBGP")
			}
			g := ap.GracefulRestart
			if !tc.gr {
				if g != nil {
					t.Fatalf("graceful restart %v, want none", g)
				}
				for _, af := range ap.AfiSafis {
					if af.MpGracefulRestart != nil {
						t.Errorf("family %v offers graceful restart", af.Config.Family)
					}
				}
				return
			}
			if g == nil || !g.Enabled || !g.LocalRestarting || g.RestartTime != tc.restart || g.DeferralTime == 0 || g.LonglivedEnabled != (tc.llTime > 0) {
				t.Fatalf("graceful restart %v, want enabled, restarting, %d s, long-lived %v", g, tc.restart, tc.llTime > 0)
			}
			for _, af := range ap.AfiSafis {
				if af.MpGracefulRestart == nil || !af.MpGracefulRestart.Config.Enabled {
					t.Errorf("family %v: no graceful restart", af.Config.Family)
				}
				ll := af.LongLivedGracefulRestart
				if (tc.llTime > 0) != (ll != nil) || (ll != nil && (!ll.Config.Enabled || ll.Config.RestartTime != tc.llTime)) {
					t.Errorf("family %v: long-lived %v, want stale time %d s", af.Config.Family, ll, tc.llTime)
				}
			}
		})
	}
}

// TestPeerLimits: timers beyond their fields and a password longer than
// Linux takes are refused, and the error never shows the password.
func TestPeerLimits(t *testing.T) {
	addr := netip.MustParseAddr("127.0.0.1")
	long := strings.Repeat("k", MaxPasswordLen+1)
	for _, tc := range []struct {
		name string
		peer Peer
		want string
	}{
		{"restart time", Peer{Address: addr, ASN: 1, GracefulRestart: true, RestartTime: 4096 * time.Second}, "restart time 1h8m16s is out of range"},
		{"stale time", Peer{Address: addr, ASN: 1, GracefulRestart: true, LongLivedStaleTime: MaxLongLivedStaleTime + time.Second}, "long-lived stale time"},
		{"password", Peer{Address: addr, ASN: 1, Password: long}, "the TCP-MD5 password is 81 bytes long (Linux takes up to 80)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{ASN: 65010, RouterID: netip.MustParseAddr("192.0.2.10"), Peers: []Peer{tc.peer}}, Deps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one with %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "kkkk") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
}
