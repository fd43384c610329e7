package bgp

import (
	"context"
	"log/slog"

	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// logAdapter sends GoBGP's log through slog. GoBGP's Fatal and Panic are
// logged at error level and do not end the process: a BGP problem must not
// take detection down with it.
type logAdapter struct {
	log *slog.Logger
}

func attrs(fields gobgplog.Fields) []any {
	out := make([]any, 0, 2*len(fields))
	for k, v := range fields {
		if k == gobgplog.FieldFacility {
			k = "facility"
		}
		out = append(out, k, v)
	}
	return out
}

func (l *logAdapter) Panic(msg string, f gobgplog.Fields) { l.log.Error(msg, attrs(f)...) }
func (l *logAdapter) Fatal(msg string, f gobgplog.Fields) { l.log.Error(msg, attrs(f)...) }
func (l *logAdapter) Error(msg string, f gobgplog.Fields) { l.log.Error(msg, attrs(f)...) }
func (l *logAdapter) Warn(msg string, f gobgplog.Fields)  { l.log.Warn(msg, attrs(f)...) }

// Info is GoBGP's chatter (every state change of every FSM); it goes to
// debug, while the speaker logs what an operator needs at info.
func (l *logAdapter) Info(msg string, f gobgplog.Fields)  { l.log.Debug(msg, attrs(f)...) }
func (l *logAdapter) Debug(msg string, f gobgplog.Fields) { l.log.Debug(msg, attrs(f)...) }
func (l *logAdapter) SetLevel(gobgplog.LogLevel)          {}

func (l *logAdapter) GetLevel() gobgplog.LogLevel {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		return gobgplog.DebugLevel
	}
	return gobgplog.WarnLevel
}
