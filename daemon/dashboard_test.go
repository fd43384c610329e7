package daemon

import (
	"net"
	"testing"
)

// TestDashboardURL: where the start line sends a browser.
func TestDashboardURL(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "http://127.0.0.1:8080/"},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "http://127.0.0.1:8080/"},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 9090}, "http://[::1]:9090/"},
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 80}, "http://192.0.2.7:80/"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 8080}, "http://[2001:db8::7]:8080/"},
	} {
		if got := dashboardURL(tc.addr); got != tc.want {
			t.Errorf("dashboardURL(%v) = %q, want %q", tc.addr, got, tc.want)
		}
	}
}
