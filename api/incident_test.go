package api

import (
	"fmt"
	"testing"

	"github.com/kapkan-io/kapkan/config"
)

// fakeIncidents holds tars by attack id.
type fakeIncidents map[uint64][]byte

func (f fakeIncidents) IncidentTar(id uint64) ([]byte, error) {
	b, ok := f[id]
	if !ok {
		return nil, fmt.Errorf("%w: no incident of attack %d", ErrNotFound, id)
	}
	return b, nil
}

func TestGetIncident(t *testing.T) {
	for _, tc := range []struct {
		name      string
		incidents Incidents
		url       string
		status    int
		code      string
		body      string
	}{
		{name: "held", incidents: fakeIncidents{7: []byte("the tar")}, url: "/api/v1/attacks/7/incident", status: 200, body: "the tar"},
		{name: "not held", incidents: fakeIncidents{7: nil}, url: "/api/v1/attacks/8/incident", status: 404, code: "not_found"},
		{name: "bad id", incidents: fakeIncidents{}, url: "/api/v1/attacks/x/incident", status: 400, code: "bad_request"},
		{name: "no recorder", url: "/api/v1/attacks/7/incident", status: 503, code: "unavailable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, func(_ *config.API, d *Deps) { d.Incidents = tc.incidents })
			w := f.do(t, "GET", tc.url, readToken, "")
			if w.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tc.status, w.Body)
			}
			if tc.code != "" {
				if got := errorOf(t, w).Code; got != tc.code {
					t.Errorf("code %q, want %q", got, tc.code)
				}
				return
			}
			if got := w.Body.String(); got != tc.body {
				t.Errorf("body %q, want %q", got, tc.body)
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/x-tar" {
				t.Errorf("content type %q", ct)
			}
		})
	}
}
