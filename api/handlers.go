package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate"
)

var errInternal = errors.New("internal error")

func badPath(c *gin.Context) error {
	return fmt.Errorf("%w: no route %s %s (see /api/v1/openapi.yaml)", ErrNotFound, c.Request.Method, c.Request.URL.Path)
}

// unavailable is the error of a route whose source this daemon lacks.
func unavailable(what string) error { return fmt.Errorf("%w: %s", ErrUnavailable, what) }

func (s *Server) readyz(c *gin.Context) {
	if s.deps.Ready == nil {
		s.fail(c, unavailable("readiness"))
		return
	}
	v := s.deps.Ready()
	status := http.StatusOK
	if !v.Ready {
		status = http.StatusServiceUnavailable
	}
	c.PureJSON(status, v)
}

func (s *Server) metrics(c *gin.Context) {
	if s.deps.Registry == nil {
		s.fail(c, unavailable("metrics"))
		return
	}
	promhttp.HandlerFor(s.deps.Registry, promhttp.HandlerOpts{Registry: s.deps.Registry}).ServeHTTP(c.Writer, c.Request)
}

// Bounds of GET /api/v1/traffic.
const (
	defaultTrafficLimit = 10
	maxTrafficLimit     = 1000
)

func (s *Server) traffic(c *gin.Context) {
	if hg := c.Query("hostgroup"); hg != "" {
		s.historyTraffic(c, hg)
		return
	}
	limit := defaultTrafficLimit
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > maxTrafficLimit {
			s.fail(c, badRequest("limit %q is not a count from 1 to %d", q, maxTrafficLimit))
			return
		}
		limit = n
	}
	by := c.DefaultQuery("by", "pps")
	if by != "pps" && by != "mbps" && by != "fps" {
		s.fail(c, badRequest("by %q is not a rate (want pps, mbps or fps)", by))
		return
	}
	if s.deps.Traffic == nil {
		s.fail(c, unavailable("traffic snapshot"))
		return
	}
	v := s.deps.Traffic.Traffic(limit, by)
	if v.Top.Incoming == nil {
		v.Top.Incoming = []TargetView{}
	}
	if v.Top.Outgoing == nil {
		v.Top.Outgoing = []TargetView{}
	}
	if v.Hostgroups == nil {
		v.Hostgroups = []HostgroupView{}
	}
	c.PureJSON(http.StatusOK, v)
}

func (s *Server) listAttacks(c *gin.Context) {
	if isHistory(c) {
		s.historyAttacks(c)
		return
	}
	if s.deps.Events == nil {
		s.fail(c, unavailable("event ring"))
		return
	}
	active, recent := s.attacks.list()
	c.PureJSON(http.StatusOK, gin.H{"active": active, "recent": recent})
}

func (s *Server) getAttack(c *gin.Context) {
	if s.deps.Events == nil {
		s.fail(c, unavailable("event ring"))
		return
	}
	id, err := strconv.ParseUint(c.Param("id"), 10, 64)
	if err != nil || id == 0 {
		s.fail(c, badRequest("attack id %q is not a number", c.Param("id")))
		return
	}
	a, ok := s.attacks.get(id)
	if !ok {
		if s.historyAttack(c, id) {
			return
		}
		s.fail(c, fmt.Errorf("%w: attack %d (not active, nor among the last %d ended, nor in the history)", ErrNotFound, id, RecentAttacks))
		return
	}
	c.PureJSON(http.StatusOK, a)
}

func (s *Server) listMitigations(c *gin.Context) {
	if s.deps.Mitigations == nil {
		s.fail(c, unavailable("mitigation manager"))
		return
	}
	now := s.deps.Now()
	act := s.deps.Mitigations.Active()
	out := make([]ActionView, len(act))
	for i, a := range act {
		out[i] = actionView(a, now)
	}
	c.PureJSON(http.StatusOK, gin.H{"dry_run": s.deps.DryRun, "mitigations": out})
}

// BanRequest is the body of POST /api/v1/mitigations.
type BanRequest struct {
	Target   string          `json:"target"`
	Action   string          `json:"action,omitempty"` // blackhole (default), flowspec-discard, flowspec-ratelimit
	RateMbps float64         `json:"rate_mbps,omitempty"`
	Match    *flowspec.Match `json:"match,omitempty"`
	TTL      string          `json:"ttl,omitempty"`
	Reason   string          `json:"reason,omitempty"`
}

// ParseTarget reads an address (as a /32 or /128) or a prefix.
func ParseTarget(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("target %q is neither an address nor a prefix", s)
	}
	return p, nil
}

// Check checks a ban as the API does (kapkan ban checks before sending);
// check, when not nil, checks the FlowSpec match.
func (b *BanRequest) Check(check func(netip.Prefix, flowspec.Match) error) error {
	_, _, err := b.request(check)
	return err
}

// request checks a ban and turns it into the manager's form. check, when
// not nil, checks the FlowSpec match.
func (b *BanRequest) request(check func(netip.Prefix, flowspec.Match) error) (mitigate.Request, flowspec.Match, error) {
	var r mitigate.Request
	var match flowspec.Match
	if b.Target == "" {
		return r, match, badRequest("no target (want an address or a prefix)")
	}
	t, err := ParseTarget(b.Target)
	if err != nil {
		return r, match, badRequest("%v", err)
	}
	kind := flowspec.Blackhole
	if b.Action != "" {
		if kind, err = flowspec.ParseAction(b.Action); err != nil || kind == flowspec.None {
			return r, match, badRequest("action %q (want blackhole, flowspec-discard or flowspec-ratelimit)", b.Action)
		}
	}
	if kind == flowspec.RateLimit && b.RateMbps <= 0 {
		return r, match, badRequest("flowspec-ratelimit needs rate_mbps above 0")
	}
	if kind != flowspec.RateLimit && b.RateMbps != 0 {
		return r, match, badRequest("rate_mbps is for flowspec-ratelimit only")
	}
	if b.Match != nil {
		match = *b.Match
		if kind == flowspec.Blackhole && !match.IsZero() {
			return r, match, badRequest("a blackhole takes no match (use a FlowSpec action)")
		}
		if check != nil {
			if err := check(t, match); err != nil {
				return r, match, badRequest("match: %v", err)
			}
		}
	}
	var ttl time.Duration
	if b.TTL != "" {
		if ttl, err = time.ParseDuration(b.TTL); err != nil || ttl <= 0 {
			return r, match, badRequest("ttl %q is not a positive duration (want e.g. 30m)", b.TTL)
		}
	}
	reason := b.Reason
	if reason == "" {
		reason = "manual"
	}
	return mitigate.Request{Kind: kind, Target: t, RateMbps: b.RateMbps, TTL: ttl, Reason: reason}, match, nil
}

// decode reads the body as exactly one JSON object into v, strictly: an
// unknown field is an error.
func decode(c *gin.Context, v any) error {
	data, err := io.ReadAll(c.Request.Body)
	if err != nil {
		if isTooLarge(err) {
			return ErrTooLarge
		}
		return badRequest("body: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return badRequest("no body (want a JSON object)")
		}
		return badRequest("body: %v", err)
	}
	if dec.More() {
		return badRequest("body: more than one JSON value")
	}
	return nil
}

func (s *Server) ban(c *gin.Context) {
	var b BanRequest
	if err := decode(c, &b); err != nil {
		s.fail(c, err)
		return
	}
	req, match, err := b.request(s.deps.CheckMatch)
	if err != nil {
		s.fail(c, err)
		return
	}
	if s.deps.Mitigations == nil {
		s.fail(c, unavailable("mitigation manager"))
		return
	}
	now := s.deps.Now()
	a, err := s.deps.Mitigations.Ban(req, match, now)
	if err != nil {
		s.fail(c, err)
		return
	}
	id := mitigate.ActionID(a.Kind, a.Target)
	for _, v := range s.deps.Mitigations.Active() {
		if v.ID == id {
			c.PureJSON(http.StatusCreated, actionView(v, now))
			return
		}
	}
	s.fail(c, fmt.Errorf("ban of %s accepted but not in force: %w", id, errInternal))
}

func (s *Server) unbanTarget(c *gin.Context) {
	q, ok := c.GetQuery("target")
	if !ok {
		s.fail(c, badRequest("no target (want ?target=ADDRESS or PREFIX, or DELETE /api/v1/mitigations/{id})"))
		return
	}
	t, err := ParseTarget(q)
	if err != nil {
		s.fail(c, badRequest("%v", err))
		return
	}
	if s.deps.Mitigations == nil {
		s.fail(c, unavailable("mitigation manager"))
		return
	}
	n := s.deps.Mitigations.Unban(t, s.deps.Now(), "manual unban")
	if n == 0 {
		s.fail(c, fmt.Errorf("%w: no mitigation in force on or inside %s", ErrNotFound, t.Masked()))
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"target": t.Masked().String(), "withdrawn": n})
}

func (s *Server) unbanID(c *gin.Context) {
	if s.deps.Mitigations == nil {
		s.fail(c, unavailable("mitigation manager"))
		return
	}
	id := c.Param("id")
	n, err := s.deps.Mitigations.UnbanID(id, s.deps.Now(), "manual unban")
	if err != nil {
		s.fail(c, err)
		return
	}
	if n == 0 {
		s.fail(c, fmt.Errorf("%w: no mitigation %s in force", ErrNotFound, id))
		return
	}
	c.PureJSON(http.StatusOK, gin.H{"withdrawn": n})
}

func (s *Server) exporters(c *gin.Context) {
	if s.deps.Exporters == nil {
		s.fail(c, unavailable("exporter snapshot"))
		return
	}
	out := s.deps.Exporters.Exporters()
	if out == nil {
		out = []ExporterView{}
	}
	c.PureJSON(http.StatusOK, gin.H{"exporters": out})
}

func (s *Server) bgp(c *gin.Context) {
	if s.deps.BGP == nil {
		s.fail(c, unavailable("BGP session details"))
		return
	}
	out := s.deps.BGP.Sessions()
	if out == nil {
		out = []SessionView{}
	}
	c.PureJSON(http.StatusOK, gin.H{"sessions": out})
}

func (s *Server) rules(c *gin.Context) {
	if s.deps.Rules == nil {
		s.fail(c, unavailable("rules"))
		return
	}
	c.PureJSON(http.StatusOK, s.deps.Rules.RulesView())
}

// reloadTrigger is the trigger of a reload asked through the API.
const reloadTrigger = "API"

func (s *Server) reloadRules(c *gin.Context) {
	if s.deps.Rules == nil {
		s.fail(c, unavailable("rules"))
		return
	}
	if err := s.deps.Rules.ReloadRules(reloadTrigger); err != nil {
		s.fail(c, refusedError{err})
		return
	}
	c.PureJSON(http.StatusOK, s.deps.Rules.RulesView().LastReload)
}

func (s *Server) config(c *gin.Context) {
	if s.deps.Config == nil {
		s.fail(c, unavailable("configuration"))
		return
	}
	c.PureJSON(http.StatusOK, s.deps.Config.Redacted())
}

func (s *Server) reloadConfig(c *gin.Context) {
	if s.deps.Config == nil {
		s.fail(c, unavailable("configuration"))
		return
	}
	if err := s.deps.Config.ReloadConfig(reloadTrigger); err != nil {
		s.fail(c, refusedError{err})
		return
	}
	c.PureJSON(http.StatusOK, ReloadView{OK: true, At: s.deps.Now().UTC(), Trigger: reloadTrigger, Errors: []string{}})
}
