package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"golang.org/x/term"

	"github.com/kapkan-io/kapkan/flowspec"
)

// cmdTop shows what the running daemon sees, through its API: the top
// targets each way, the attacks going on, the mitigations in force and the
// health of the flow exporters. On a terminal it redraws in place every
// --interval until q, Ctrl-C or SIGTERM; anywhere else (a pipe, a file) or
// with --once it prints one snapshot, without escape codes, and exits.
func cmdTop(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("top", flag.ContinueOnError)
	fs.SetOutput(stderr)
	api := addAPIFlags(fs)
	interval := fs.Duration("interval", time.Second, "time between refreshes on a terminal")
	limit := fs.Int("limit", 10, "targets shown each way")
	by := fs.String("by", "pps", "what the top targets are ranked by: pps, mbps or fps")
	once := fs.Bool("once", false, "print one snapshot and exit, even on a terminal")
	setUsage(fs, "usage: kapkan top [--api URL | --config FILE] [--token TOKEN] [--interval 1s] [--limit 10] [--by pps|mbps|fps] [--once]")
	rest, err := parseArgs(fs, args)
	if err != nil {
		return flagStatus(err)
	}
	var bad []string
	if len(rest) > 0 {
		bad = append(bad, fmt.Sprintf("unexpected argument %q", rest[0]))
	}
	switch *by {
	case "pps", "mbps", "fps":
	default:
		bad = append(bad, fmt.Sprintf("--by %q: want pps, mbps or fps", *by))
	}
	if *limit < 1 {
		bad = append(bad, fmt.Sprintf("--limit %d: want 1 or more", *limit))
	}
	if *interval < 100*time.Millisecond {
		bad = append(bad, fmt.Sprintf("--interval %s: want 100ms or more", *interval))
	}
	if len(bad) > 0 {
		for _, b := range bad {
			fmt.Fprintf(stderr, "kapkan top: %s\n", b)
		}
		return 2
	}
	c, err := api.client()
	if err != nil {
		fmt.Fprintf(stderr, "kapkan top: %v\n", err)
		return 2
	}
	t := &top{api: c, limit: *limit, by: *by, interval: *interval}
	scr := plainScreen
	if f, ok := stdout.(*os.File); ok && !*once && term.IsTerminal(int(f.Fd())) {
		scr = terminalScreen(f)
	}
	return t.run(ctx, stdout, stderr, scr)
}

// top is one `kapkan top` session.
type top struct {
	api      *apiClient
	limit    int
	by       string
	interval time.Duration
}

// screen is where top draws. A plain screen gets one snapshot; a live one
// is redrawn in place.
type screen struct {
	live bool
	// size is the terminal's width and height (0, 0: no limit).
	size func() (w, h int)
	// keys, when not nil, is read for q (quit); restore undoes what was
	// done to the terminal to read it key by key.
	keys    io.Reader
	restore func()
}

var plainScreen = screen{size: func() (int, int) { return 0, 0 }}

// terminalScreen draws on the terminal f, reading keys from stdin when it
// is a terminal too.
func terminalScreen(f *os.File) screen {
	s := screen{live: true, size: func() (int, int) {
		w, h, err := term.GetSize(int(f.Fd()))
		if err != nil || w <= 0 || h <= 0 {
			return 80, 24
		}
		return w, h
	}}
	in := int(os.Stdin.Fd())
	if term.IsTerminal(in) {
		if old, err := term.MakeRaw(in); err == nil {
			s.keys = os.Stdin
			s.restore = func() { _ = term.Restore(in, old) }
		}
	}
	return s
}

// ANSI sequences of the live view: the alternate screen (the shell's
// screen comes back on exit), the cursor hidden while drawing, and each
// frame written over the last from the top-left corner.
const (
	ansiEnter = "\x1b[?1049h\x1b[?25l"
	ansiLeave = "\x1b[?25h\x1b[?1049l"
	ansiHome  = "\x1b[H"
	ansiEOL   = "\x1b[K" // clear the rest of the line
	ansiEOS   = "\x1b[J" // clear the rest of the screen
)

func (t *top) run(ctx context.Context, stdout, stderr io.Writer, scr screen) int {
	snap := t.fetch(ctx)
	if err := snap.fatal(t.api); err != nil {
		if scr.restore != nil {
			scr.restore()
		}
		fmt.Fprintf(stderr, "kapkan top: %v\n", err)
		return 1
	}
	if !scr.live {
		var b bytes.Buffer
		render(&b, snap, t)
		_, _ = stdout.Write(b.Bytes())
		return 0
	}

	_, _ = io.WriteString(stdout, ansiEnter)
	left := false
	leave := func() { // the shell's screen, cursor and terminal mode back
		if left {
			return
		}
		left = true
		_, _ = io.WriteString(stdout, ansiLeave)
		if scr.restore != nil {
			scr.restore()
		}
	}
	defer leave()
	keys := make(chan byte, 1)
	if scr.keys != nil {
		go readKeys(scr.keys, keys) // blocks in Read until a key or the process ends
	}
	tick := time.NewTicker(t.interval)
	defer tick.Stop()
	for {
		if err := snap.fatal(t.api); err != nil {
			var ae *apiError
			if errors.As(err, &ae) {
				// The token was revoked or lost its scope: waiting will not help.
				leave()
				fmt.Fprintf(stderr, "kapkan top: %v\n", err)
				return 1
			}
			snap.problem = err.Error() // the daemon restarting: keep trying
		}
		drawFrame(stdout, snap, t, scr)
		select {
		case <-ctx.Done():
			return 0
		case k, ok := <-keys:
			if !ok || k == 'q' || k == 'Q' || k == 3 /* Ctrl-C in raw mode */ || k == 4 /* Ctrl-D */ {
				return 0
			}
		case <-tick.C:
		}
		snap = t.fetch(ctx)
		if ctx.Err() != nil {
			return 0
		}
	}
}

// readKeys sends the bytes read from r to keys, and closes keys at the
// end of r.
func readKeys(r io.Reader, keys chan<- byte) {
	defer close(keys)
	var b [16]byte
	for {
		n, err := r.Read(b[:])
		for _, k := range b[:n] {
			keys <- k
		}
		if err != nil {
			return
		}
	}
}

// drawFrame writes one frame over the last: each line cut to the
// terminal's width and cleared to its end, no more lines than the terminal
// has (a scroll would break the redraw in place), in one write.
func drawFrame(w io.Writer, snap *snapshot, t *top, scr screen) {
	width, height := scr.size()
	var b bytes.Buffer
	render(&b, snap, t)
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if height > 0 && len(lines) > height {
		lines = lines[:height]
	}
	var f bytes.Buffer
	f.WriteString(ansiHome)
	for i, l := range lines {
		f.WriteString(cut(l, width))
		f.WriteString(ansiEOL)
		if i < len(lines)-1 {
			f.WriteString("\r\n") // CR too: a terminal in raw mode does not add it
		}
	}
	f.WriteString(ansiEOS)
	_, _ = w.Write(f.Bytes())
}

// cut shortens s to width characters (0: no limit).
func cut(s string, width int) string {
	if width <= 0 || utf8.RuneCountInString(s) <= width {
		return s
	}
	n := 0
	for i := range s {
		if n == width {
			return s[:i]
		}
		n++
	}
	return s
}

// What top reads from the API (api-contract.md). Its own types, not the
// daemon's: a client reads only what it shows, and keeps working against a
// daemon that adds fields.
type (
	topTraffic struct {
		At            time.Time `json:"at"`
		WindowSeconds float64   `json:"window_seconds"`
		Top           struct {
			Incoming []topTarget `json:"incoming"`
			Outgoing []topTarget `json:"outgoing"`
		} `json:"top"`
	}
	topTarget struct {
		Target    string  `json:"target"`
		Hostgroup string  `json:"hostgroup"`
		PPS       float64 `json:"pps"`
		Mbps      float64 `json:"mbps"`
		FPS       float64 `json:"fps"`
	}
	topAttacks struct {
		Active []topAttack `json:"active"`
	}
	topAttack struct {
		ID        uint64    `json:"id"`
		Target    string    `json:"target"`
		Direction string    `json:"direction"`
		Hostgroup string    `json:"hostgroup"`
		Started   time.Time `json:"started"`
		Trigger   string    `json:"trigger"`
		Rate      float64   `json:"rate"`
		Threshold float64   `json:"threshold"`
		Labels    []string  `json:"labels"`
		Action    string    `json:"action"` // the step in force, "" for none
		Reason    string    `json:"reason"`
	}
	topMitigations struct {
		DryRun      bool            `json:"dry_run"`
		Mitigations []topMitigation `json:"mitigations"`
	}
	topMitigation struct {
		ID       string          `json:"id"`
		Kind     string          `json:"kind"`
		Target   string          `json:"target"`
		Match    *flowspec.Match `json:"match"`
		RateMbps float64         `json:"rate_mbps"`
		Expires  time.Time       `json:"expires"`
		TTLLeft  *float64        `json:"ttl_left_seconds"`
		DryRun   bool            `json:"dry_run"`
	}
	topExporters struct {
		Exporters []topExporter `json:"exporters"`
	}
	topExporter struct {
		Address          string   `json:"address"`
		Formats          []string `json:"formats"`
		RecordsPerSecond float64  `json:"records_per_second"`
		Sampling         []struct {
			Rate   float64 `json:"rate"`
			Source string  `json:"source"`
		} `json:"sampling"`
		SequenceGaps         uint64    `json:"sequence_gaps"`
		DecodeErrors         uint64    `json:"decode_errors"`
		ActiveTimeoutWarning bool      `json:"active_timeout_warning"`
		LastSeen             time.Time `json:"last_seen"`
	}
)

// snapshot is one fetch of the four sections; each has its own error, so
// one section the daemon cannot serve leaves the others on screen.
type snapshot struct {
	at                                      time.Time // the traffic's time, else the local clock
	traffic                                 topTraffic
	attacks                                 topAttacks
	mitigations                             topMitigations
	exporters                               topExporters
	trafficErr, attacksErr, mitigErr, exErr error
	problem                                 string // shown under the header
}

// fetch reads the four sections at once.
func (t *top) fetch(ctx context.Context) *snapshot {
	s := &snapshot{}
	q := url.Values{"limit": {strconv.Itoa(t.limit)}, "by": {t.by}}
	var wg sync.WaitGroup
	wg.Go(func() { s.trafficErr = t.api.getJSON(ctx, "/api/v1/traffic?"+q.Encode(), &s.traffic) })
	wg.Go(func() { s.attacksErr = t.api.getJSON(ctx, "/api/v1/attacks", &s.attacks) })
	wg.Go(func() { s.mitigErr = t.api.getJSON(ctx, "/api/v1/mitigations", &s.mitigations) })
	wg.Go(func() { s.exErr = t.api.getJSON(ctx, "/api/v1/exporters", &s.exporters) })
	wg.Wait()
	s.at = s.traffic.At
	if s.trafficErr != nil || s.at.IsZero() {
		s.at = time.Now()
	}
	return s
}

// fatal is the error that leaves nothing to show: the API refused the
// token (an *apiError), or answered none of the four requests.
func (s *snapshot) fatal(c *apiClient) error {
	errs := []error{s.trafficErr, s.attacksErr, s.mitigErr, s.exErr}
	for _, err := range errs {
		var ae *apiError
		if errors.As(err, &ae) && ae.auth() {
			hint := "give a token with --token or $" + tokenEnv
			switch {
			case ae.Status == 403:
				hint = "the token lacks the read scope: give one with read or operate"
			case c.token != "":
				hint = "the token was not accepted: check --token or $" + tokenEnv
			}
			return fmt.Errorf("the API at %s refused to answer (%w): %s", c.base, ae, hint)
		}
	}
	for _, err := range errs {
		var ae *apiError
		if err == nil || errors.As(err, &ae) {
			return nil
		}
	}
	return fmt.Errorf("cannot reach the API at %s: is the daemon running (kapkan run), and is --api or --config right? (%w)", c.base, s.trafficErr)
}

// render writes the snapshot as text: aligned columns, human numbers.
func render(w io.Writer, s *snapshot, t *top) {
	mode := ""
	if s.mitigErr == nil && s.mitigations.DryRun {
		mode = "  DRY-RUN"
	}
	fmt.Fprintf(w, "kapkan top  %s  %s%s\n", t.api.base, s.at.UTC().Format("2006-01-02 15:04:05 UTC"), mode)
	if s.problem != "" {
		fmt.Fprintf(w, "! %s\n", s.problem)
	}

	// attackOn names the active attack on a target, if any: an attack on
	// the same direction whose target (an address or a prefix) covers it.
	attackOn := func(target, dir string) string {
		p, err := parseTarget(target)
		if err != nil {
			return ""
		}
		for _, a := range s.attacks.Active {
			if ap, err := parseTarget(a.Target); err == nil && a.Direction == dir && ap.Overlaps(p) {
				return "#" + strconv.FormatUint(a.ID, 10)
			}
		}
		return ""
	}
	window := ""
	if s.traffic.WindowSeconds > 0 {
		window = fmt.Sprintf(", %gs window", s.traffic.WindowSeconds)
	}
	for _, d := range []struct {
		name, dir string
		rows      []topTarget
	}{{"INCOMING", "incoming", s.traffic.Top.Incoming}, {"OUTGOING", "outgoing", s.traffic.Top.Outgoing}} {
		fmt.Fprintf(w, "\n%s  top %d by %s%s\n", d.name, t.limit, t.by, window)
		if sectionProblem(w, s.trafficErr) {
			continue
		}
		if len(d.rows) == 0 {
			fmt.Fprintln(w, "  (no traffic)")
			continue
		}
		tw := newTable(w, "TARGET", "HOSTGROUP", "PPS", "MBPS", "FPS", "ATTACK")
		for _, r := range d.rows {
			tw.row(r.Target, dash(r.Hostgroup), human(r.PPS), human(r.Mbps), human(r.FPS), dash(attackOn(r.Target, d.dir)))
		}
		tw.flush()
	}

	fmt.Fprintf(w, "\nATTACKS  %d active\n", len(s.attacks.Active))
	if !sectionProblem(w, s.attacksErr) && len(s.attacks.Active) > 0 {
		tw := newTable(w, "ID", "TARGET", "DIR", "HOSTGROUP", "LABELS", "RATE/THRESHOLD", "FOR", "ACTION")
		for _, a := range s.attacks.Active {
			action := a.Action
			if action == "" {
				action = "none"
				if a.Reason != "" {
					action += " (" + a.Reason + ")"
				}
			}
			tw.row("#"+strconv.FormatUint(a.ID, 10), a.Target, direction(a.Direction), dash(a.Hostgroup),
				dash(strings.Join(a.Labels, ",")), human(a.Rate)+"/"+human(a.Threshold)+" "+a.Trigger,
				since(s.at, a.Started), action)
		}
		tw.flush()
	}

	fmt.Fprintf(w, "\nMITIGATIONS  %d in force\n", len(s.mitigations.Mitigations))
	if !sectionProblem(w, s.mitigErr) && len(s.mitigations.Mitigations) > 0 {
		tw := newTable(w, "ID", "TARGET", "ACTION", "MATCH", "TTL LEFT", "DRY-RUN")
		for _, m := range s.mitigations.Mitigations {
			action := m.Kind
			if m.RateMbps > 0 {
				action += " " + human(m.RateMbps) + "Mbps"
			}
			match := "-"
			if m.Match != nil {
				match = m.Match.String()
			} else if m.Kind != flowspec.Blackhole.String() {
				match = "any"
			}
			var left time.Duration
			if m.TTLLeft != nil {
				left = time.Duration(*m.TTLLeft * float64(time.Second))
			} else if !m.Expires.IsZero() {
				left = m.Expires.Sub(s.at)
			}
			tw.row(dash(m.ID), m.Target, action, match, shortDuration(left), yesNo(m.DryRun))
		}
		tw.flush()
	}

	fmt.Fprintf(w, "\nINGEST  %d exporters\n", len(s.exporters.Exporters))
	if !sectionProblem(w, s.exErr) && len(s.exporters.Exporters) > 0 {
		tw := newTable(w, "EXPORTER", "FORMATS", "RECORDS/S", "SAMPLING", "GAPS", "DECODE ERR", "WARNINGS")
		for _, e := range s.exporters.Exporters {
			var sampling []string
			for _, r := range e.Sampling {
				sampling = append(sampling, fmt.Sprintf("%g (%s)", r.Rate, r.Source))
			}
			var warn []string
			if e.ActiveTimeoutWarning {
				warn = append(warn, "active timeout too long")
			}
			if !e.LastSeen.IsZero() && s.at.Sub(e.LastSeen) > time.Minute {
				warn = append(warn, "silent for "+since(s.at, e.LastSeen))
			}
			tw.row(e.Address, dash(strings.Join(e.Formats, ",")), human(e.RecordsPerSecond), dash(strings.Join(sampling, ",")),
				strconv.FormatUint(e.SequenceGaps, 10), strconv.FormatUint(e.DecodeErrors, 10), dash(strings.Join(warn, "; ")))
		}
		tw.flush()
	}
}

// sectionProblem writes why a section has nothing to show, if it has not.
// A 503 is "unavailable": the daemon runs without that part.
func sectionProblem(w io.Writer, err error) bool {
	if err == nil {
		return false
	}
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.Status == 503:
		msg := "  unavailable"
		if ae.Message != "" {
			msg += ": " + ae.Message
		}
		fmt.Fprintln(w, msg)
	default:
		fmt.Fprintf(w, "  error: %v\n", err)
	}
	return true
}

// table is a tabwriter with a header row, two spaces between columns.
type table struct{ tw *tabwriter.Writer }

func newTable(w io.Writer, header ...string) table {
	t := table{tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)}
	t.row(header...)
	return t
}

func (t table) row(cells ...string) {
	_, _ = io.WriteString(t.tw, "  "+strings.Join(cells, "\t")+"\n")
}

func (t table) flush() { _ = t.tw.Flush() }

// parseTarget reads an address or a prefix ("203.0.113.5", "203.0.113.0/24").
func parseTarget(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// human writes a rate in at most four characters and a suffix: 0, 1.5,
// 96.2, 350, 1.2k, 350k, 1.2M, 12G.
func human(v float64) string {
	if v < 0 {
		return "-" + human(-v)
	}
	if v < 999.5 {
		switch {
		case v == float64(int64(v)):
			return strconv.FormatInt(int64(v), 10)
		case v < 99.95:
			return strings.TrimSuffix(strconv.FormatFloat(v, 'f', 1, 64), ".0")
		default:
			return strconv.FormatFloat(v, 'f', 0, 64)
		}
	}
	for _, u := range []struct {
		div    float64
		suffix string
	}{{1e3, "k"}, {1e6, "M"}, {1e9, "G"}, {1e12, "T"}} {
		x := v / u.div
		switch {
		case x < 9.95:
			return strings.TrimSuffix(strconv.FormatFloat(x, 'f', 1, 64), ".0") + u.suffix
		case x < 999.5:
			return strconv.FormatFloat(x, 'f', 0, 64) + u.suffix
		}
	}
	return strconv.FormatFloat(v/1e12, 'f', 0, 64) + "T"
}

// shortDuration writes a duration to the second, in its two largest units:
// 45s, 9m30s, 2h5m.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}

// since is how long ago t was, from now; "-" when t is unknown.
func since(now, t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return shortDuration(now.Sub(t))
}

func direction(d string) string {
	switch d {
	case "incoming":
		return "in"
	case "outgoing":
		return "out"
	}
	return dash(d)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}
