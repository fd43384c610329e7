package daemon

import (
	"errors"
	"net/http"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/kapkan-io/kapkan/mitigate"
)

// mitigationRoutes serves the mitigations in force and manual actions:
//
//	GET    /api/v1/mitigations               the actions in force
//	POST   /api/v1/mitigations               a manual action (BanRequest)
//	DELETE /api/v1/mitigations?target=PREFIX withdraw every action on or inside PREFIX
//
// Manual actions pass the same safety checks as any other; a refusal is a
// 422 with the guard's reason.
func (d *Daemon) mitigationRoutes(r gin.IRouter) {
	g := r.Group("/api/v1")
	g.GET("/mitigations", func(c *gin.Context) {
		out := gin.H{"dry_run": d.started.DryRun, "mitigations": d.mit.mgr.Active()}
		if d.mit.speaker != nil {
			out["bgp_sessions_up"] = d.mit.speaker.Up()
		}
		c.PureJSON(http.StatusOK, out)
	})
	g.POST("/mitigations", func(c *gin.Context) {
		var b BanRequest
		if err := c.ShouldBindJSON(&b); err != nil {
			c.PureJSON(http.StatusBadRequest, gin.H{"error": "body: " + err.Error()})
			return
		}
		req, match, err := b.Request()
		if err != nil {
			c.PureJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		a, err := d.mit.mgr.Ban(req, match, time.Now())
		switch {
		case errors.Is(err, mitigate.ErrInvalid):
			c.PureJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
		case err != nil:
			c.PureJSON(http.StatusUnprocessableEntity, gin.H{"error": err.Error()})
		default:
			c.PureJSON(http.StatusCreated, gin.H{"target": a.Target.String(), "action": a.Kind.String(), "ttl": a.TTL.Round(time.Millisecond).String(), /* "1m2.505s", not "1m2.504560581s" */
				"expires": a.Expires.UTC().Format(time.RFC3339), "dry_run": a.DryRun})
		}
	})
	g.DELETE("/mitigations", func(c *gin.Context) {
		t, err := ParseTarget(c.Query("target"))
		if err != nil {
			c.PureJSON(http.StatusBadRequest, gin.H{"error": err.Error()})
			return
		}
		n := d.mit.mgr.Unban(t, time.Now(), "manual unban")
		if n == 0 {
			c.PureJSON(http.StatusNotFound, gin.H{"error": "no mitigation in force on or inside " + t.String()})
			return
		}
		c.PureJSON(http.StatusOK, gin.H{"target": t.String(), "withdrawn": n})
	})
}
