package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapkan-io/kapkan/events"
)

// events streams the event ring as server-sent events. Each event is
// written as
//
//	id: <seq>
//	event: <kind>
//	data: <event JSON>
//
// Last-Event-ID (or ?since=SEQ) resumes after that event; without either
// the stream starts with the next event. The ring never waits for a
// stream: a subscriber that falls behind it (a slow client, or a resume
// from an event the ring no longer holds) gets one `event: lost` with
// {"lost": N} and the stream ends. Its id is the last event before the
// first one still kept, so a client that reconnects with it resumes with
// what the ring still has. A write that takes longer than writeTimeout
// ends the stream too.
func (s *Server) events(c *gin.Context) {
	ring := s.deps.Events
	if ring == nil {
		s.fail(c, unavailable("event ring"))
		return
	}
	from := ring.Last() + 1
	resume := c.GetHeader("Last-Event-ID")
	if resume == "" {
		resume = c.Query("since")
	}
	if resume != "" {
		seq, err := strconv.ParseUint(resume, 10, 64)
		if err != nil {
			s.fail(c, badRequest("Last-Event-ID or since %q is not an event id", resume))
			return
		}
		from = seq + 1
	}
	select {
	case s.subs <- struct{}{}:
		defer func() { <-s.subs }()
	default:
		s.fail(c, unavailable(fmt.Sprintf("event stream: already %d subscribers", MaxSubscribers)))
		return
	}

	// A resume from before the oldest event kept is a loss, told at once.
	var lostAtStart uint64
	if oldest := ring.Oldest(); resume != "" && from < oldest {
		lostAtStart, from = oldest-from, oldest
	}
	rd := ring.NewReader("sse", from)
	defer rd.Close()

	w := c.Writer
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	var buf []byte
	send := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(s.writeTimeout))
		if _, err := w.Write(b); err != nil {
			return false
		}
		return rc.Flush() == nil
	}
	lost := func(n, before uint64) {
		buf = fmt.Appendf(buf[:0], "id: %d\nevent: lost\ndata: {\"lost\":%d}\n\n", before-1, n)
		send(buf)
		s.log.Info("event stream subscriber fell behind the ring: cut off", "lost", n, "remote", c.ClientIP())
	}
	if lostAtStart > 0 {
		lost(lostAtStart, from)
		return
	}
	if !send([]byte(": kapkan events\n\n")) {
		return
	}
	ctx := c.Request.Context()
	for {
		nctx, cancel := context.WithTimeout(ctx, s.keepalive)
		e, err := rd.Next(nctx)
		cancel()
		switch {
		case err == nil:
		case errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
			if !send([]byte(": keepalive\n\n")) {
				return
			}
			continue
		default:
			return // the client went away
		}
		if n := rd.LostBefore(); n > 0 {
			lost(n, e.Seq)
			return
		}
		buf = appendSSE(buf[:0], &e)
		if !send(buf) {
			return
		}
	}
}

// appendSSE appends e as one server-sent event.
func appendSSE(dst []byte, e *events.Event) []byte {
	dst = fmt.Appendf(dst, "id: %d\nevent: %s\ndata: ", e.Seq, e.Kind)
	dst = events.AppendJSON(dst, e) // one line: JSON escapes every newline
	return append(dst, "\n\n"...)
}
