package api

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/gin-gonic/gin"
)

// Incidents gives the flight recorder's incident of an attack: a tar
// holding capture.pcap (the target's flow telemetry from before detection)
// and incident_test.yaml (a rule test expecting the verdict as observed).
// An attack it holds nothing of is an error wrapping ErrNotFound.
type Incidents interface {
	IncidentTar(id uint64) ([]byte, error)
}

// getIncident answers GET /api/v1/attacks/{id}/incident with the
// incident's tar (what `kapkan incident export` writes into a folder).
func (s *Server) getIncident(c *gin.Context) {
	if s.deps.Incidents == nil {
		s.fail(c, unavailable("flight recorder (incidents.ring_bytes is 0)"))
		return
	}
	id, err := strconv.ParseUint(c.Param("id"), 10, 64)
	if err != nil || id == 0 {
		s.fail(c, badRequest("attack id %q is not a number", c.Param("id")))
		return
	}
	body, err := s.deps.Incidents.IncidentTar(id)
	if err != nil {
		s.fail(c, err)
		return
	}
	c.Header("Content-Disposition", fmt.Sprintf(`attachment; filename="attack-%d-incident.tar"`, id))
	c.Data(http.StatusOK, "application/x-tar", body)
}
