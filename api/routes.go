package api

import (
	_ "embed"
	"log/slog"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"
)

// openAPI is the document that describes every route below; a test keeps
// the two in step.
//
//go:embed openapi.yaml
var openAPI []byte

// routes declares every route of the server, with what each needs.
func (s *Server) routes(r *gin.Engine) {
	r.Use(gin.CustomRecoveryWithWriter(nil, func(c *gin.Context, err any) {
		s.log.Error("api handler panicked", "method", c.Request.Method, "path", c.FullPath(), "panic", err)
		s.fail(c, errInternal)
	}), s.logRequest, s.limitBody)
	r.NoRoute(func(c *gin.Context) { s.fail(c, badPath(c)) })

	r.GET("/healthz", s.authorize(open), func(c *gin.Context) { c.PureJSON(http.StatusOK, gin.H{"status": "ok"}) })
	r.GET("/readyz", s.authorize(open), s.readyz)
	r.GET("/metrics", s.authorize(read), s.metrics)

	if s.dash != nil {
		r.GET("/", s.authorize(open), s.dash.index)
		r.GET("/ui/*file", s.authorize(open), s.dash.file)
	}

	v1 := r.Group("/api/v1")
	v1.GET("/openapi.yaml", s.authorize(open), func(c *gin.Context) { c.Data(http.StatusOK, "application/yaml", openAPI) })
	v1.GET("/status", s.authorize(read), s.status)
	v1.GET("/traffic", s.authorize(read), s.traffic)
	v1.GET("/attacks", s.authorize(read), s.listAttacks)
	v1.GET("/attacks/export", s.authorize(read), s.exportAttacks)
	v1.GET("/attacks/:id", s.authorize(read), s.getAttack)
	v1.GET("/attacks/:id/incident", s.authorize(read), s.getIncident)
	v1.GET("/mitigations", s.authorize(read), s.listMitigations)
	v1.POST("/mitigations", s.authorize(operate), s.ban)
	v1.DELETE("/mitigations", s.authorize(operate), s.unbanTarget)
	v1.DELETE("/mitigations/:id", s.authorize(operate), s.unbanID)
	v1.GET("/exporters", s.authorize(read), s.exporters)
	v1.GET("/bgp", s.authorize(read), s.bgp)
	v1.GET("/rules", s.authorize(read), s.rules)
	v1.POST("/rules/reload", s.authorize(operate), s.reloadRules)
	v1.GET("/config", s.authorize(read), s.config)
	v1.POST("/config/reload", s.authorize(operate), s.reloadConfig)
	v1.GET("/events", s.authorize(read), s.events)
}

// logRequest logs every request at debug level: method, route, status,
// the token's name, time taken. Never a header or the query (the
// Authorization header is a secret).
func (s *Server) logRequest(c *gin.Context) {
	start := time.Now()
	c.Next()
	if !s.log.Enabled(c.Request.Context(), slog.LevelDebug) {
		return
	}
	s.log.Debug("api request", "method", c.Request.Method, "route", c.FullPath(), "status", c.Writer.Status(),
		"token_name", c.GetString(tokenName), "remote", c.ClientIP(), "duration", time.Since(start))
}
