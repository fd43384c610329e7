package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// apiLoad is the load the harness puts on a daemon's API while it ingests:
// clients fetching the read routes in a loop, SSE subscribers reading the
// event stream, and one subscriber that stops reading (it must be cut off,
// never slow anything).
type apiLoad struct {
	Clients     int `json:"clients"`
	Subscribers int `json:"sse_subscribers"`

	Requests int64 `json:"requests"`
	Errors   int64 `json:"request_errors"`
	// Events is what each keeping-up subscriber received; Gaps the seq
	// jumps any of them saw (events lost to a subscriber that keeps up:
	// must be 0); LostNotices the `event: lost` they were sent.
	Events      []int64 `json:"sse_events"`
	Gaps        int64   `json:"sse_gaps"`
	LostNotices int64   `json:"sse_lost_notices"`
	// StalledCutOff: the subscriber that stopped reading was closed by the
	// daemon before the step ended.
	StalledCutOff bool `json:"sse_stalled_cut_off"`
}

// apiRoutes are the read routes the clients fetch in turn.
var apiRoutes = []string{"/api/v1/traffic", "/api/v1/attacks", "/api/v1/mitigations", "/api/v1/exporters", "/healthz"}

// startAPILoad starts the load on api (http://host:port), each client
// fetching a route every interval (0: back to back), and returns a function
// that stops it and reports.
func startAPILoad(ctx context.Context, api string, clients, subscribers int, every time.Duration) func() apiLoad {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	rep := apiLoad{Clients: clients, Subscribers: subscribers, Events: make([]int64, subscribers)}
	var requests, errs, gaps, lost atomic.Int64
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: clients + 1}}
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(max(every, time.Millisecond))
			defer tick.Stop()
			for n := i; ctx.Err() == nil; n++ {
				if every > 0 {
					select {
					case <-tick.C:
					case <-ctx.Done():
						return
					}
				}
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+apiRoutes[n%len(apiRoutes)], nil)
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs.Add(1)
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				requests.Add(1)
				if resp.StatusCode != http.StatusOK {
					errs.Add(1)
				}
			}
		}()
	}
	stream := &http.Client{} // no timeout: streams last the step
	for i := range subscribers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/events", nil)
			resp, err := stream.Do(req)
			if err != nil {
				errs.Add(1)
				return
			}
			defer resp.Body.Close()
			sc := bufio.NewScanner(resp.Body)
			var last uint64
			for sc.Scan() {
				line := sc.Text()
				switch {
				case strings.HasPrefix(line, "id: "):
					id, _ := strconv.ParseUint(strings.TrimPrefix(line, "id: "), 10, 64)
					if last != 0 && id != last+1 {
						gaps.Add(1)
					}
					last = id
					atomic.AddInt64(&rep.Events[i], 1)
				case line == "event: lost":
					lost.Add(1)
				}
			}
		}()
	}
	// The stalled subscriber: connects, then reads nothing until the end,
	// and then finds out whether the daemon closed its stream.
	stalled := make(chan bool, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, api+"/api/v1/events", nil)
		resp, err := stream.Do(req)
		if err != nil {
			stalled <- false
			return
		}
		defer resp.Body.Close()
		<-ctx.Done()
		// Drain what the kernel buffered; a stream the daemon cut ends
		// (EOF), one still open blocks until the body is closed.
		done := make(chan error, 1)
		go func() { _, err := io.Copy(io.Discard, resp.Body); done <- err }()
		select {
		case err := <-done:
			stalled <- err == nil
		case <-time.After(2 * time.Second):
			stalled <- false
		}
	}()
	return func() apiLoad {
		cancel()
		wg.Wait()
		rep.StalledCutOff = <-stalled
		rep.Requests, rep.Errors, rep.Gaps, rep.LostNotices = requests.Load(), errs.Load(), gaps.Load(), lost.Load()
		return rep
	}
}

func (l apiLoad) String() string {
	return fmt.Sprintf("api: %d clients %d requests %d errors; sse: %d subscribers events %v gaps %d lost notices %d; stalled subscriber cut off: %v",
		l.Clients, l.Requests, l.Errors, l.Subscribers, l.Events, l.Gaps, l.LostNotices, l.StalledCutOff)
}
