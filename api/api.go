// Package api owns the daemon's HTTP interface: the REST API under
// /api/v1 (traffic, attacks, mitigations, exporters, BGP sessions, rules,
// configuration, the live event stream), /metrics, /healthz and /readyz,
// with bearer tokens scoped read or operate, and the OpenAPI document
// that describes it all (openapi.yaml, embedded and served).
//
// The package reads the daemon through small interfaces (Deps) and keeps
// only one state of its own: an index of attacks fed by a reader of the
// event ring (Run). New starts nothing; the daemon keeps the listener and
// serves Handler.
package api

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
	"github.com/kapkan-io/kapkan/mitigate"
)

// Limits of the server.
const (
	// MaxBody bounds a request body; a larger one is refused (413).
	MaxBody = 64 << 10
	// MaxSubscribers bounds the concurrent /api/v1/events streams; one
	// more is refused (503).
	MaxSubscribers = 100
	// RecentAttacks is how many ended attacks GET /api/v1/attacks keeps.
	RecentAttacks = 100
	// MaxAttackMitigations bounds the mitigation history kept per attack
	// (the newest are kept).
	MaxAttackMitigations = 64
	// MaxAttackSeries bounds the rate points kept per attack; past it
	// the series is thinned to every other point.
	MaxAttackSeries = 720
)

// Mitigations is what the API needs of the mitigation manager
// (*mitigate.Manager satisfies it).
type Mitigations interface {
	Active() []mitigate.ActiveAction
	Ban(req mitigate.Request, match flowspec.Match, now time.Time) (mitigate.Action, error)
	Unban(target netip.Prefix, now time.Time, reason string) int
	UnbanID(id string, now time.Time, reason string) (int, error)
}

// Traffic gives the engine's latest top-targets snapshot: limit targets
// per direction, ordered by by (pps, mbps or fps, checked by the API).
// It must not touch the hot path: it reads a snapshot taken periodically.
type Traffic interface {
	Traffic(limit int, by string) TrafficView
}

// Exporters gives the telemetry self-check per exporter.
type Exporters interface {
	Exporters() []ExporterView
}

// BGP gives the speaker's sessions, one per configured peer.
type BGP interface {
	Sessions() []SessionView
}

// Rules gives the rule set running and reloads it. ReloadRules returns
// the reload's error (nil when it worked); an error that wraps several
// (Unwrap() []error, like config.Errors) is shown as a list.
type Rules interface {
	RulesView() RulesView
	ReloadRules(trigger string) error
}

// Config gives the effective configuration with its secrets redacted
// (any JSON-encodable value) and reloads it from its file.
type Config interface {
	Redacted() any
	ReloadConfig(trigger string) error
}

// Deps are what the API reads. A nil part makes its routes answer 503
// (code unavailable); /healthz needs nothing.
type Deps struct {
	// Log receives a line per request (debug) and per refused
	// authentication (warn); never a token.
	Log *slog.Logger
	// Registry is served at /metrics.
	Registry *prometheus.Registry
	// Events is the daemon's event ring: the attack index and
	// /api/v1/events read it.
	Events      *events.Ring
	Mitigations Mitigations
	// DryRun is shown with the mitigations.
	DryRun bool
	// CheckMatch, when set, checks the FlowSpec match of a manual ban
	// (the BGP encoder's check: protocols, port ranges).
	CheckMatch func(target netip.Prefix, m flowspec.Match) error
	Traffic    Traffic
	Exporters  Exporters
	BGP        BGP
	Rules      Rules
	Config     Config
	// History, when set, answers the history queries: attacks in a time
	// range or filtered, an attack the live index no longer holds, a
	// hostgroup's traffic series, exports (store.Store satisfies it).
	History History
	// Incidents, when set, gives the flight recorder's incident of an
	// attack (GET /api/v1/attacks/{id}/incident).
	Incidents Incidents
	// Ready says whether the daemon is ready to serve (listeners bound,
	// rules loaded, BGP sessions up when configured): /readyz.
	Ready func() ReadyView
	// Version and Started are shown by GET /api/v1/status.
	Version string
	Started time.Time
	// Dashboard, when set, is the web dashboard's files (index.html at
	// its root), served at / and /ui/.
	Dashboard fs.FS
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Server is the API: a gin engine and the attack index. New builds it;
// Run feeds the index; Handler serves.
type Server struct {
	deps     Deps
	log      *slog.Logger
	openRead bool
	tokens   []token
	engine   *gin.Engine
	attacks  *attackIndex
	dash     *dashboard    // nil without a dashboard
	subs     chan struct{} // one slot per event stream
	// keepalive is the period of the event stream's keepalive comment.
	keepalive time.Duration
	// writeTimeout bounds one write to an event stream: a client that
	// does not read is cut off.
	writeTimeout time.Duration
}

// token is a configured token: its name, scope and the SHA-256 of the
// secret (compared in constant time; the secret itself is not kept).
type token struct {
	name    string
	operate bool
	sum     [sha256.Size]byte
}

// New builds the API from its configuration section: it reads the tokens
// (from their files and environment variables) and registers the routes.
// It starts nothing.
func New(cfg config.API, deps Deps) (*Server, error) {
	if deps.Log == nil {
		deps.Log = slog.New(slog.DiscardHandler)
	}
	if deps.Now == nil {
		deps.Now = time.Now
	}
	s := &Server{deps: deps, log: deps.Log, openRead: cfg.OpenRead, attacks: newAttackIndex(),
		subs: make(chan struct{}, MaxSubscribers), keepalive: 15 * time.Second, writeTimeout: 10 * time.Second}
	for i, tc := range cfg.Tokens {
		secret, err := loadToken(tc)
		if err != nil {
			return nil, fmt.Errorf("api.tokens[%d] (%s): %w", i, tc.Name, err)
		}
		s.tokens = append(s.tokens, token{name: tc.Name, operate: tc.Scope == config.ScopeOperate, sum: sha256.Sum256([]byte(secret))})
	}
	if deps.Dashboard != nil {
		d, err := newDashboard(deps.Dashboard)
		if err != nil {
			return nil, err
		}
		s.dash = d
	}
	gin.SetMode(gin.ReleaseMode)
	s.engine = gin.New()
	s.routes(s.engine)
	return s, nil
}

// loadToken reads a token's secret from its file or environment variable.
// Errors name where it was looked for, never what was found.
func loadToken(tc config.APIToken) (string, error) {
	var secret string
	switch {
	case tc.TokenFile != "":
		b, err := os.ReadFile(tc.TokenFile)
		if err != nil {
			return "", fmt.Errorf("read token_file: %w", err)
		}
		secret = strings.TrimSpace(string(b))
		if secret == "" {
			return "", fmt.Errorf("token_file %s is empty", tc.TokenFile)
		}
	case tc.TokenEnv != "":
		secret = strings.TrimSpace(os.Getenv(tc.TokenEnv))
		if secret == "" {
			return "", fmt.Errorf("environment variable %s (token_env) is unset or empty", tc.TokenEnv)
		}
	default:
		return "", fmt.Errorf("no token_file or token_env")
	}
	return secret, nil
}

// Handler serves the API.
func (s *Server) Handler() http.Handler { return s.engine }

// Run feeds the attack index from the event ring until ctx ends. Without
// an event ring it waits for ctx.
func (s *Server) Run(ctx context.Context) error {
	if s.deps.Events == nil {
		<-ctx.Done()
		return nil
	}
	rd := s.deps.Events.NewReader("api", 1)
	defer rd.Close()
	for {
		e, err := rd.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("api: read events: %w", err)
		}
		if n := rd.LostBefore(); n > 0 {
			s.log.Warn("the attack index fell behind the event ring: some attacks may show incomplete", "lost", n)
		}
		s.attacks.add(e)
	}
}
