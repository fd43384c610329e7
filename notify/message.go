package notify

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// message is an event rendered for people: a one-line title (an email's
// subject) and a body of "key: value" lines.
type message struct {
	Title string
	Body  string
}

// Text is the title, a blank line and the body.
func (m message) Text() string { return m.Title + "\n\n" + m.Body }

// DryRunMark starts the title of every dry-run mitigation.
const DryRunMark = "[DRY-RUN] "

// render renders e for people.
func render(e *events.Event) message {
	var b body
	var title string
	switch {
	case e.Attack != nil && strings.HasPrefix(string(e.Kind), "attack_"):
		a := e.Attack
		what := map[events.Kind]string{events.AttackStarted: "Attack started", events.AttackEscalated: "Attack escalated",
			events.AttackEnded: "Attack ended", events.AttackUpdated: "Attack update"}[e.Kind]
		title = fmt.Sprintf("%s on %s (%s)", what, target(a.Target), a.Direction)
		b.line("target", target(a.Target))
		b.line("direction", a.Direction)
		b.line("hostgroup", a.Hostgroup)
		b.line("attack id", strconv.FormatUint(a.ID, 10))
		if e.Kind == events.AttackStarted && a.Trigger != "" {
			b.line("trigger", fmt.Sprintf("%s %s over threshold %s", a.Trigger, num(a.Rate), num(a.Threshold)))
		}
		if e.Kind == events.AttackEnded {
			if !a.Ended.IsZero() && !a.Started.IsZero() {
				b.line("duration", a.Ended.Sub(a.Started).Round(time.Second).String())
			}
			b.line("peak", rates(a.Peak))
		} else {
			b.line("rates", rates(a.Rates))
		}
		b.line("labels", strings.Join(a.Labels, ", "))
		b.line("vector", match(a.Vector))
		b.line("rule", a.Decider)
		if a.Action != flowspec.None {
			act := a.Action.String()
			if a.Ladder != "" {
				act += fmt.Sprintf(" (ladder %s, step %d)", a.Ladder, a.Step)
			}
			b.line("action", act)
		}
		b.line("reason", a.Reason)
		b.line("started", stamp(a.Started))
	case e.Mitigation != nil:
		m := e.Mitigation
		what := map[events.Kind]string{events.MitigationAnnounced: "Mitigation announced", events.MitigationWithdrawn: "Mitigation withdrawn",
			events.MitigationRefused: "Mitigation refused", events.MitigationFailed: "Mitigation failed",
			events.MitigationRenewed: "Mitigation renewed", events.MitigationNone: "No mitigation"}[e.Kind]
		title = fmt.Sprintf("%s: %s on %s", what, m.Action, target(m.Target))
		if m.DryRun {
			title = DryRunMark + title
			b.line("dry-run", "yes: nothing was sent to the routers")
		}
		b.line("action", m.Action.String())
		b.line("target", target(m.Target))
		if m.Action != flowspec.Blackhole {
			b.line("match", match(m.Match))
		}
		if m.RateMbps != 0 {
			b.line("rate limit", num(m.RateMbps)+" Mbps")
		}
		if m.AttackID != 0 {
			b.line("attack id", strconv.FormatUint(m.AttackID, 10))
		}
		if m.Ladder != "" {
			b.line("ladder", fmt.Sprintf("%s, step %d", m.Ladder, m.Step))
		}
		if !m.Expires.IsZero() && e.Kind != events.MitigationWithdrawn {
			ttl := ""
			if !e.At.IsZero() {
				ttl = m.Expires.Sub(e.At).Round(time.Second).String() + ", "
			}
			b.line("ttl", ttl+"until "+stamp(m.Expires))
		}
		b.line("reason", m.Reason)
		b.line("error", m.Err)
	case e.Attack != nil:
		title = fmt.Sprintf("%s: attack on %s", events.Message(e), target(e.Attack.Target))
		b.line("reason", e.Attack.Reason)
	default:
		title = "Kapkan: " + events.Message(e)
	}
	b.line("at", stamp(e.At))
	return message{Title: title, Body: b.String()}
}

type body struct{ strings.Builder }

// line adds "key: value", or nothing for an empty value.
func (b *body) line(key, value string) {
	if value == "" {
		return
	}
	b.WriteString(key)
	b.WriteString(": ")
	b.WriteString(value)
	b.WriteByte('\n')
}

// target shows an address alone for a one-address prefix.
func target(p netip.Prefix) string {
	if p.IsValid() && p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// num writes a rate without a fraction when it has none worth showing.
func num(f float64) string {
	if math.Abs(f) >= 100 || f == math.Trunc(f) {
		return strconv.FormatFloat(math.Round(f), 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'f', 2, 64)
}

// rates lists rates by name: "mbps 950, pps 1200000".
func rates(r map[string]float64) string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	slices.Sort(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + " " + num(r[n])
	}
	return strings.Join(parts, ", ")
}

func match(m flowspec.Match) string {
	if m.IsZero() {
		return ""
	}
	return m.String()
}
