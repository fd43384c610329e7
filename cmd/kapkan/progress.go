package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// progress draws one status line on a terminal, redrawn in place (carriage
// return, then erase to the end of the line), at most once per interval.
// When off it draws nothing: in a pipe or a log file a status line
// redrawn every quarter of a second is only noise.
type progress struct {
	w     io.Writer
	on    bool
	every time.Duration
	now   func() time.Time
	start time.Time
	last  time.Time
	drawn bool
}

// progressInterval is how often the line is redrawn (a variable for
// tests, which redraw at every chance).
var progressInterval = 250 * time.Millisecond

// isTerminal says whether w is a terminal; tests replace it.
var isTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressFlag adds --progress to a command's flags.
func progressFlag(fs *flag.FlagSet) *string {
	return fs.String("progress", "auto", "show a status line on stderr while running: auto (when stderr is a terminal), always or never")
}

// newProgress returns the status line of a command writing to w, drawn
// according to mode (auto, always or never).
func newProgress(mode string, w io.Writer) (*progress, error) {
	p := &progress{w: w, every: progressInterval, now: time.Now}
	switch mode {
	case "auto":
		p.on = isTerminal(w)
	case "always":
		p.on = true
	case "never":
	default:
		return nil, fmt.Errorf("--progress %q: want auto, always or never", mode)
	}
	p.start = p.now()
	return p, nil
}

// due says whether the line should be redrawn now: callers build the text
// only then.
func (p *progress) due() bool {
	if p == nil || !p.on {
		return false
	}
	now := p.now()
	if p.drawn && now.Sub(p.last) < p.every {
		return false
	}
	p.last = now
	return true
}

// elapsed is the time since the progress began.
func (p *progress) elapsed() time.Duration { return p.now().Sub(p.start) }

// draw replaces the status line with text.
func (p *progress) draw(text string) {
	if p == nil || !p.on {
		return
	}
	fmt.Fprintf(p.w, "\r%s\x1b[K", text)
	p.drawn = true
}

// clear erases the status line, before other output on the same terminal
// and at the end.
func (p *progress) clear() {
	if p == nil || !p.on || !p.drawn {
		return
	}
	fmt.Fprint(p.w, "\r\x1b[K")
	p.drawn = false
}

// fmtElapsed formats an elapsed time as m:ss (h:mm:ss past an hour).
func fmtElapsed(d time.Duration) string {
	s := int64(d / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// fmtCount formats n with thin groups of three digits: 1 234 567.
func fmtCount(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// perSecond is n over d, as a whole rate.
func perSecond(n int64, d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64(float64(n) / d.Seconds())
}
