package mitigate

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/kapkan-io/kapkan/flowspec"
)

// ActiveAction is an action in force as the API shows it and the state
// file keeps it.
type ActiveAction struct {
	// ID names the action in the API (ActionID): its kind and target.
	ID       string          `json:"id"`
	Kind     flowspec.Action `json:"-"`
	KindName string          `json:"kind"`
	Target   netip.Prefix    `json:"target"`
	Match    *flowspec.Match `json:"match,omitempty"`
	RateMbps float64         `json:"rate_mbps,omitempty"`
	TTL      string          `json:"ttl"`
	Expires  time.Time       `json:"expires"`
	Reason   string          `json:"reason"`
	Ladder   string          `json:"ladder,omitempty"`
	Step     int             `json:"step,omitempty"`
	Attacks  []uint64        `json:"attacks,omitempty"`
	DryRun   bool            `json:"dry_run"`
}

func (e *entry) view() ActiveAction {
	v := ActiveAction{ID: ActionID(e.Kind, e.Target), Kind: e.Kind, KindName: e.Kind.String(), Target: e.Target, RateMbps: e.RateMbps, TTL: e.TTL.Round(time.Millisecond).String(),
		Expires: e.Expires.UTC(), Reason: e.Reason, Ladder: e.Ladder, Step: e.Step, DryRun: e.DryRun}
	if !e.Match.IsZero() {
		m := e.Match
		v.Match = &m
	}
	for id := range e.owners {
		v.Attacks = append(v.Attacks, id)
	}
	return v
}

// stateFile is the file's layout.
type stateFile struct {
	Version int            `json:"version"`
	Saved   time.Time      `json:"saved"`
	Actions []ActiveAction `json:"actions"`
}

// save writes the state file (m.mu held): a temporary file, synced, then
// renamed over the old one, so a crash leaves the old or the new state,
// never half of one. A failure is logged: the actions stay in force.
func (m *Manager) save() {
	if m.file == "" {
		return
	}
	st := stateFile{Version: 1, Saved: time.Now().UTC()}
	for _, e := range m.entries {
		st.Actions = append(st.Actions, e.view())
	}
	if err := writeAtomic(m.file, st); err != nil {
		m.log.Error("cannot save the mitigation state: a restart would forget the actions in force", "file", m.file, "err", err)
	}
}

func writeAtomic(name string, v any) error {
	// Without HTML escaping: people read this file ("syn&!ack", not
	// "syn\u0026!ack").
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return err
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if err := os.MkdirAll(filepath.Dir(name), 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(name), filepath.Base(name)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // after a successful rename there is nothing left to remove
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), name)
}

// Restore reads the state file and puts back the actions that have not
// expired, with the expiry they had, announcing them again (unless in
// dry-run). Each is checked against today's configuration; what fails
// the check or expired is reported and left out. Actions kept in dry-run
// are not made live by a restart that turned dry-run off. A missing file
// is an empty state; an unreadable one is an error (the daemon must not
// start blind to what it announced).
func (m *Manager) Restore(now time.Time) (restored int, err error) {
	if m.file == "" {
		return 0, nil
	}
	data, err := os.ReadFile(m.file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mitigation state: %w", err)
	}
	var st stateFile
	if err := json.Unmarshal(data, &st); err != nil {
		return 0, fmt.Errorf("mitigation state %s: %w (move it away to start without it)", m.file, err)
	}
	if st.Version != 1 {
		return 0, fmt.Errorf("mitigation state %s: version %d (want 1)", m.file, st.Version)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range st.Actions {
		kind, err := flowspec.ParseAction(v.KindName)
		if err != nil {
			return restored, fmt.Errorf("mitigation state %s: %w", m.file, err)
		}
		ttl, _ := time.ParseDuration(v.TTL)
		if v.DryRun && !m.dryRun {
			m.log.Warn("mitigation state: left out an action kept in dry-run; dry-run is off now", "target", v.Target, "kind", v.KindName)
			continue
		}
		a := Action{Request: Request{Kind: kind, Target: v.Target, RateMbps: v.RateMbps, TTL: ttl, Reason: v.Reason}, Expires: v.Expires}
		a, err = m.guard.Restore(a, now)
		if err != nil {
			m.log.Info("mitigation state: not restored", "target", v.Target, "kind", v.KindName, "why", err)
			continue
		}
		e := &entry{Action: a, Ladder: v.Ladder, Step: v.Step, owners: map[uint64]bool{}}
		if v.Match != nil {
			e.Match = *v.Match
		}
		m.entries[key{kind, a.Target}] = e
		m.announce(e, 0, now, "restored after restart: "+v.Reason)
		restored++
	}
	m.save()
	return restored, nil
}
