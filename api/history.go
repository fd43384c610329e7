package api

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapkan-io/kapkan/store"
)

// historyParams are the query parameters that turn GET /api/v1/attacks
// from the live view into a history query.
var historyParams = []string{"from", "to", "target", "label", "hostgroup", "rule", "limit"}

// maxHistory bounds one history answer (and one export).
const maxHistory = 10_000

// isHistory reports whether the request asks the store.
func isHistory(c *gin.Context) bool {
	for _, p := range historyParams {
		if _, ok := c.GetQuery(p); ok {
			return true
		}
	}
	return false
}

// parseTime reads a time given as RFC 3339 or as a duration before now
// ("1h": an hour ago).
func parseTime(name, v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(v); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, badRequest("%s %q is neither an RFC 3339 time (2026-12-01T10:00:00Z) nor a duration before now (24h)", name, v)
}

// attackFilter reads a history query.
func (s *Server) attackFilter(c *gin.Context) (store.AttackFilter, error) {
	now := s.deps.Now()
	var f store.AttackFilter
	var err error
	if f.From, err = parseTime("from", c.Query("from"), now); err != nil {
		return f, err
	}
	if f.To, err = parseTime("to", c.Query("to"), now); err != nil {
		return f, err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return f, badRequest("from %s is not before to %s", f.From.Format(time.RFC3339), f.To.Format(time.RFC3339))
	}
	if t := c.Query("target"); t != "" {
		if f.Target, err = ParseTarget(t); err != nil {
			return f, badRequest("%v", err)
		}
	}
	f.Label, f.Hostgroup, f.Rule = c.Query("label"), c.Query("hostgroup"), c.Query("rule")
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxHistory {
			return f, badRequest("limit %q is not a count from 1 to %d", q, maxHistory)
		}
		f.Limit = n
	}
	return f, nil
}

// historyAttacks answers GET /api/v1/attacks with history parameters.
func (s *Server) historyAttacks(c *gin.Context) {
	f, err := s.attackFilter(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.deps.History == nil {
		s.fail(c, unavailable("history (store.path is empty)"))
		return
	}
	as, err := s.deps.History.Attacks(c.Request.Context(), f)
	if err != nil {
		s.fail(c, fmt.Errorf("history: %w", err))
		return
	}
	if as == nil {
		as = []store.Attack{}
	}
	c.PureJSON(http.StatusOK, gin.H{"attacks": as})
}

// historyAttack answers GET /api/v1/attacks/{id} for an attack the live
// index no longer holds.
func (s *Server) historyAttack(c *gin.Context, id uint64) bool {
	if s.deps.History == nil {
		return false
	}
	a, ms, err := s.deps.History.Attack(c.Request.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return false
	}
	if err != nil {
		s.fail(c, fmt.Errorf("history: %w", err))
		return true
	}
	if ms == nil {
		ms = []store.Mitigation{}
	}
	c.PureJSON(http.StatusOK, HistoryAttackView{Attack: a, Active: a.Ended.IsZero(), Mitigations: ms})
	return true
}

// HistoryAttackView is an attack from the history with its mitigation
// events.
type HistoryAttackView struct {
	store.Attack
	Active      bool               `json:"active"`
	Mitigations []store.Mitigation `json:"mitigations"`
}

// exportAttacks answers GET /api/v1/attacks/export: the attacks of a
// history query as CSV (the default) or JSON, as a download.
func (s *Server) exportAttacks(c *gin.Context) {
	f, err := s.attackFilter(c)
	if err != nil {
		s.fail(c, err)
		return
	}
	format := c.DefaultQuery("format", "csv")
	if format != "csv" && format != "json" {
		s.fail(c, badRequest("format %q (want csv or json)", format))
		return
	}
	if s.deps.History == nil {
		s.fail(c, unavailable("history (store.path is empty)"))
		return
	}
	if f.Limit == 0 {
		f.Limit = maxHistory
	}
	as, err := s.deps.History.Attacks(c.Request.Context(), f)
	if err != nil {
		s.fail(c, fmt.Errorf("history: %w", err))
		return
	}
	name := "kapkan-attacks-" + s.deps.Now().UTC().Format("20060102T150405Z")
	if format == "json" {
		if as == nil {
			as = []store.Attack{}
		}
		c.Header("Content-Disposition", `attachment; filename="`+name+`.json"`)
		c.PureJSON(http.StatusOK, as)
		return
	}
	c.Header("Content-Disposition", `attachment; filename="`+name+`.csv"`)
	c.Status(http.StatusOK)
	c.Header("Content-Type", "text/csv; charset=utf-8")
	w := csv.NewWriter(c.Writer)
	_ = w.Write([]string{"id", "target", "direction", "hostgroup", "started", "ended", "trigger", "threshold",
		"peak_pps", "peak_mbps", "peak_fps", "labels", "vector", "rules", "decider"})
	for _, a := range as {
		ended := ""
		if !a.Ended.IsZero() {
			ended = a.Ended.UTC().Format(time.RFC3339)
		}
		vector := ""
		if !a.Vector.IsZero() {
			vector = a.Vector.String()
		}
		_ = w.Write([]string{strconv.FormatUint(a.ID, 10), a.Target.String(), a.Direction, a.Hostgroup,
			a.Started.UTC().Format(time.RFC3339), ended, a.Trigger, num(a.Threshold),
			num(a.Peak["pps"]), num(a.Peak["mbps"]), num(a.Peak["fps"]),
			strings.Join(a.Labels, " "), vector, strings.Join(a.Rules, " "), a.Decider})
	}
	w.Flush()
}

func num(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// historyTraffic answers GET /api/v1/traffic?hostgroup=: the hostgroup's
// traffic series from the history.
func (s *Server) historyTraffic(c *gin.Context, hostgroup string) {
	now := s.deps.Now()
	from, err := parseTime("from", c.DefaultQuery("from", "1h"), now)
	if err != nil {
		s.fail(c, err)
		return
	}
	to, err := parseTime("to", c.Query("to"), now)
	if err != nil {
		s.fail(c, err)
		return
	}
	if to.IsZero() {
		to = now
	}
	if !from.Before(to) {
		s.fail(c, badRequest("from %s is not before to %s", from.Format(time.RFC3339), to.Format(time.RFC3339)))
		return
	}
	var step time.Duration
	if q := c.Query("step"); q != "" {
		if step, err = time.ParseDuration(q); err != nil || step < time.Second {
			s.fail(c, badRequest("step %q is not a duration of a second or more", q))
			return
		}
	}
	if s.deps.History == nil {
		s.fail(c, unavailable("history (store.path is empty)"))
		return
	}
	out := gin.H{"hostgroup": hostgroup, "from": from.UTC(), "to": to.UTC(), "step_seconds": int(step / time.Second)}
	for _, dir := range []string{"incoming", "outgoing"} {
		pts, err := s.deps.History.Traffic(c.Request.Context(), hostgroup, dir, from, to, step)
		if err != nil {
			s.fail(c, fmt.Errorf("history: %w", err))
			return
		}
		if pts == nil {
			pts = []store.TrafficPoint{}
		}
		out[dir] = pts
	}
	c.PureJSON(http.StatusOK, out)
}

// History is what the API reads of the store.
type History interface {
	Attacks(ctx context.Context, f store.AttackFilter) ([]store.Attack, error)
	Attack(ctx context.Context, id uint64) (store.Attack, []store.Mitigation, error)
	Traffic(ctx context.Context, hostgroup, direction string, from, to time.Time, step time.Duration) ([]store.TrafficPoint, error)
}
