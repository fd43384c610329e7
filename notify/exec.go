package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/kapkan-io/kapkan/config"
	"github.com/kapkan-io/kapkan/events"
	"github.com/kapkan-io/kapkan/flowspec"
)

// execNotifier runs a program, directly (never through a shell), once per
// event. In json mode its argv is the command alone and its stdin the
// versioned JSON body of the webhook. In fastnetmon mode it follows
// FastNetMon Community's notify script: argv is IP DIRECTION PPS ACTION,
// ACTION ban when the first mitigation of a target is announced and unban
// when its last one is withdrawn (an escalation that replaces one action
// by another calls nothing), with the attack's details on stdin.
//
// A run that exits non-zero, cannot start or times out is not retried:
// a script's failure is seldom transient, and running a ban script twice
// is not always harmless.
type execNotifier struct {
	command    string
	fastnetmon bool

	// fastnetmon state. attacks is written by Observe (the dispatcher's
	// reader), read by Notify (the channel's goroutine); active only by
	// Notify.
	mu      sync.Mutex
	attacks map[uint64]events.Attack
	active  map[string]int // target → mitigations in force
}

// maxAttacks bounds the attacks remembered for their pps.
const maxAttacks = 4096

func newExec(c config.Notifier) (*execNotifier, error) {
	fi, err := os.Stat(c.Command)
	if err != nil {
		return nil, fmt.Errorf("command: %w", err)
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return nil, fmt.Errorf("command %s is not an executable file", c.Command)
	}
	x := &execNotifier{command: c.Command, fastnetmon: c.Mode == "fastnetmon"}
	if x.fastnetmon {
		x.attacks = make(map[uint64]events.Attack)
		x.active = make(map[string]int)
	}
	return x, nil
}

// Handles: a fastnetmon script is called for announced and withdrawn
// mitigations only.
func (x *execNotifier) Handles(k events.Kind) bool {
	return !x.fastnetmon || k == events.MitigationAnnounced || k == events.MitigationWithdrawn
}

// Observe remembers the attacks, whose rates a ban reports.
func (x *execNotifier) Observe(e *events.Event) {
	if !x.fastnetmon || e.Attack == nil || !strings.HasPrefix(string(e.Kind), "attack_") {
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if _, ok := x.attacks[e.Attack.ID]; !ok && len(x.attacks) >= maxAttacks {
		oldest := uint64(math.MaxUint64)
		for id := range x.attacks {
			oldest = min(oldest, id)
		}
		delete(x.attacks, oldest)
	}
	x.attacks[e.Attack.ID] = *e.Attack
}

func (x *execNotifier) Notify(ctx context.Context, e *events.Event) (bool, error) {
	if !x.fastnetmon {
		return false, x.run(ctx, []string{x.command}, append(envelope(e), '\n'))
	}
	m := e.Mitigation
	if m == nil || m.DryRun {
		return false, nil // never a ban for a dry-run: validation refuses dry_run with this mode
	}
	key := m.Target.String()
	var action string
	switch e.Kind {
	case events.MitigationAnnounced:
		if x.active[key] > 0 {
			x.active[key]++
			return false, nil
		}
		action = "ban"
	case events.MitigationWithdrawn:
		if x.active[key] != 1 {
			if x.active[key] > 1 {
				x.active[key]--
			}
			return false, nil
		}
		action = "unban"
	default:
		return false, nil
	}
	x.mu.Lock()
	a, known := x.attacks[m.AttackID]
	x.mu.Unlock()
	dir, pps := "incoming", uint64(0)
	if known {
		if a.Direction != "" {
			dir = a.Direction
		}
		pps = uint64(math.Round(max(0, a.Rates["pps"], a.Peak["pps"])))
	}
	argv := []string{x.command, target(m.Target), dir, strconv.FormatUint(pps, 10), action}
	if err := x.run(ctx, argv, fastnetmonDetails(e, a, known, dir, pps)); err != nil {
		return false, err
	}
	if action == "ban" {
		x.active[key] = 1
	} else {
		delete(x.active, key)
	}
	return false, nil
}

// run runs argv with stdin; a non-zero exit is an error carrying the end of
// stderr.
func (x *execNotifier) run(ctx context.Context, argv []string, stdin []byte) error {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdin = bytes.NewReader(stdin)
	var stderr tail
	cmd.Stdout = io.Discard
	cmd.Stderr = &stderr
	// A child the script left holding its stderr must not hold us.
	cmd.WaitDelay = time.Second
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%w)", ctx.Err(), err)
	}
	if msg := strings.TrimSpace(stderr.String()); msg != "" {
		return fmt.Errorf("run %s: %w: %s", argv[0], err, msg)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("run %s: %w (no stderr)", argv[0], err)
	}
	return fmt.Errorf("run %s: %w", argv[0], err)
}

// tail keeps the last 2 KB written to it.
type tail struct{ b []byte }

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if len(t.b) > 2048 {
		t.b = append(t.b[:0], t.b[len(t.b)-2048:]...)
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }

// fastnetmonDetails is the text a fastnetmon script reads on stdin: one
// "Key: value" line per fact, like FastNetMon's attack details.
func fastnetmonDetails(e *events.Event, a events.Attack, known bool, dir string, pps uint64) []byte {
	m := e.Mitigation
	var b body
	b.line("IP", target(m.Target))
	b.line("Action", map[events.Kind]string{events.MitigationAnnounced: "ban", events.MitigationWithdrawn: "unban"}[e.Kind])
	b.line("Attack direction", dir)
	b.line("Attack power", strconv.FormatUint(pps, 10)+" packets per second")
	if known {
		b.line("Attack id", strconv.FormatUint(a.ID, 10))
		b.line("Attack type", strings.Join(a.Labels, ", "))
		b.line("Hostgroup", a.Hostgroup)
		r := a.Rates
		if len(a.Peak) > 0 {
			r = a.Peak
		}
		if v, ok := r["pps"]; ok {
			b.line("Total "+dir+" pps", num(v)+" packets per second")
		}
		if v, ok := r["mbps"]; ok {
			b.line("Total "+dir+" traffic", num(v)+" mbps")
		}
		if v, ok := r["fps"]; ok {
			b.line("Total "+dir+" flows", num(v)+" flows per second")
		}
		b.line("Attack rates", rates(r))
		b.line("Attack vector", match(a.Vector))
		b.line("Classified by", a.Decider)
		b.line("Flow sample", func() string {
			if a.SampleRecords == 0 {
				return ""
			}
			return strconv.Itoa(a.SampleRecords) + " records"
		}())
		b.line("Attack started", stamp(a.Started))
	}
	b.line("Mitigation", m.Action.String())
	if m.Action != flowspec.Blackhole {
		b.line("Mitigation match", match(m.Match))
	}
	b.line("Mitigation expires", stamp(m.Expires))
	b.line("Reason", m.Reason)
	b.line("Event time", stamp(e.At))
	return []byte(b.String())
}
