package daemon_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/daemon/daemontest"
	"github.com/kapkan-io/kapkan/events"
)

// TestEventStreamStalledSubscriber: while events flow (30 000 in 3 s, more
// than the ring holds), a subscriber that keeps up receives every one in
// order, and one that stopped reading (a tiny receive buffer, never read)
// is cut off by the daemon; the publisher is never held up by it.
func TestEventStreamStalledSubscriber(t *testing.T) {
	d, _ := daemontest.Start(t, daemontest.Config(t, ""), "")
	url := "http://" + d.APIAddr().String() + "/api/v1/events"
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()

	stalledClient := &http.Client{Transport: &http.Transport{DialContext: (&net.Dialer{
		Control: func(_, _ string, c syscall.RawConn) error {
			var err error
			_ = c.Control(func(fd uintptr) { err = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return err
		}}).DialContext}}
	open := func(c *http.Client) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("event stream: %v %v", err, resp)
		}
		t.Cleanup(func() { resp.Body.Close() })
		return resp
	}
	stalled := open(stalledClient)
	keeping := open(http.DefaultClient)

	first := d.Events().Last() + 1
	const n = 30_000
	seen := make(chan []uint64, 1)
	go func() {
		var ids []uint64
		sc := bufio.NewScanner(keeping.Body)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				id, _ := strconv.ParseUint(v, 10, 64)
				if id >= first {
					ids = append(ids, id)
				}
				if len(ids) == n {
					break
				}
			}
		}
		seen <- ids
	}()
	var slowest time.Duration
	for i := range n {
		start := time.Now()
		d.Events().Publish(events.Event{Kind: events.AttackUpdated, Attack: &events.Attack{ID: 1_000_000, Hostgroup: "test",
			Rates: map[string]float64{"pps": float64(i)}}})
		slowest = max(slowest, time.Since(start))
		if i%1000 == 999 {
			time.Sleep(100 * time.Millisecond) // 10 000 events a second
		}
	}
	ids := <-seen
	if len(ids) != n {
		t.Fatalf("the subscriber that keeps up saw %d of %d events", len(ids), n)
	}
	for i, id := range ids {
		if id != first+uint64(i) {
			t.Fatalf("the subscriber that keeps up: event %d has id %d, want %d (a gap)", i, id, first+uint64(i))
		}
	}
	t.Logf("slowest publish %v", slowest)
	// The stalled one: its stream ends (the daemon closed it) well within
	// the write timeout plus the time the events took.
	ended := make(chan error, 1)
	go func() { _, err := io.Copy(io.Discard, stalled.Body); ended <- err }()
	select {
	case <-ended:
	case <-time.After(15 * time.Second):
		t.Fatal("the stalled subscriber was not cut off")
	}
}
