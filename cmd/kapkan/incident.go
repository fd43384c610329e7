package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/daemon"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/incident"
	"github.com/kapkan-io/kapkan/ingest"
)

// maxIncidentFile bounds a file of an incident fetched from the daemon.
const maxIncidentFile = 256 << 20

// cmdIncident is `kapkan incident export ATTACK_ID DIR`: it fetches an
// attack's incident (capture and rule test) from the running daemon.
func cmdIncident(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("incident", flag.ContinueOnError)
	fs.SetOutput(stderr)
	af := addAPIFlags(fs)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: kapkan incident export [--api URL | --config FILE] [--token TOKEN] ATTACK_ID DIR")
		fmt.Fprintln(stderr, "  writes DIR/capture.pcap and DIR/incident_test.yaml: the attack's telemetry and a rule test")
		fmt.Fprintln(stderr, "  expecting the verdict as observed (edit it, then run kapkan test on a directory holding DIR)")
		fs.PrintDefaults()
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	if len(pos) != 3 || pos[0] != "export" {
		fs.Usage()
		return 2
	}
	id, err := strconv.ParseUint(pos[1], 10, 64)
	if err != nil || id == 0 {
		fmt.Fprintf(stderr, "kapkan incident: attack id %q is not a number (the id of GET /api/v1/attacks)\n", pos[1])
		return 2
	}
	dir := pos[2]
	c, err := af.client()
	if err != nil {
		fmt.Fprintf(stderr, "kapkan incident: %v\n", err)
		return 2
	}
	if err := c.exportIncident(ctx, id, dir); err != nil {
		fmt.Fprintf(stderr, "kapkan incident: %v\n", err)
		var ae *apiError
		if errors.As(err, &ae) && ae.auth() {
			fmt.Fprintf(stderr, "kapkan incident: give a read token with --token or $%s\n", tokenEnv)
		}
		return 1
	}
	fmt.Fprintf(stdout, "incident of attack %d written to %s (%s, %s)\n", id, dir, incident.CaptureFile, incident.TestFile)
	return 0
}

// exportIncident GETs /api/v1/attacks/{id}/incident (a tar) and writes its
// files into dir.
func (c *apiClient) exportIncident(ctx context.Context, id uint64, dir string) error {
	path := fmt.Sprintf("/api/v1/attacks/%d/incident", id)
	req, err := c.newRequest(ctx, http.MethodGet, path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/x-tar")
	hc := *c.hc
	hc.Timeout = time.Minute // an incident may be megabytes
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		return newAPIError(resp.StatusCode, body)
	}
	if err := incident.ExtractTar(resp.Body, dir, maxIncidentFile); err != nil {
		return fmt.Errorf("get %s: %w", path, err)
	}
	return nil
}

// replayRecorder is the flight recorder of `kapkan replay
// --export-incidents`: the daemon's, fed by the capture on its clock. A nil
// one records nothing.
type replayRecorder struct {
	dir    string
	flight *ingest.Flight
	ring   *ingest.FlightRing
	rec    *incident.Recorder
	last   time.Time
}

func newReplayRecorder(cfg *config.Config, dir string) (*replayRecorder, error) {
	if dir == "" {
		return nil, nil
	}
	rb := cfg.Incidents.RingBytes
	if rb == 0 { // off in the daemon; replay was asked for it
		rb = config.DefaultIncidents().RingBytes
	}
	fl := ingest.NewFlight(rb)
	icfg := daemon.IncidentConfig(cfg)
	// Replay keeps every attack of the capture, however many.
	icfg.Keep = 1 << 20
	rec, err := incident.New(icfg, incident.Deps{Flight: fl, Decode: daemon.IngestOptions(cfg),
		Setup: daemon.IncidentSetup(cfg)})
	if err != nil {
		return nil, err
	}
	return &replayRecorder{dir: dir, flight: fl, ring: fl.Ring(), rec: rec}, nil
}

func (r *replayRecorder) add(d ingest.Datagram) {
	if r == nil {
		return
	}
	r.ring.Begin()
	r.ring.Add(d.Src.Addr(), d.Time, d.Payload)
	r.ring.End()
	r.last = d.Time
}

func (r *replayRecorder) observe(e *events.Event) {
	if r != nil {
		r.rec.Observe(e)
	}
}

func (r *replayRecorder) tick(now time.Time) {
	if r != nil {
		r.rec.Tick(now)
	}
}

// export writes one folder per attack into the directory; it returns the
// exit status.
func (r *replayRecorder) export(stderr io.Writer) int {
	if r == nil {
		return 0
	}
	status := 0
	for _, in := range r.rec.Incidents(r.last.Add(time.Nanosecond)) {
		in.Recording = false // the capture is over
		if err := in.WriteDir(filepath.Join(r.dir, in.Name())); err != nil {
			fmt.Fprintf(stderr, "kapkan replay: %v\n", err)
			status = 1
		}
	}
	return status
}
