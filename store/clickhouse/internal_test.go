package clickhouse

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"syscall"
	"testing"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

func TestRetryable(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("dial: %w", syscall.ECONNREFUSED), true},
		{"eof mid-answer", io.EOF, true},
		{"server network error", &ch.Exception{Code: 210, Message: "connection reset"}, true},
		{"syntax error", &ch.Exception{Code: 62, Message: "syntax error"}, false},
		{"unknown table", fmt.Errorf("insert: %w", &ch.Exception{Code: 60}), false},
		{"row the client cannot encode", permanent{errors.New("converting string to UInt8")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := retryable(tc.err); got != tc.want {
				t.Errorf("retryable(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestTTL(t *testing.T) {
	for _, tc := range []struct {
		major, minor uint64
		want         bool
	}{{18, 16, false}, {19, 5, false}, {19, 6, true}, {20, 1, true}, {25, 3, true}} {
		if got := hasTTL(tc.major, tc.minor); got != tc.want {
			t.Errorf("hasTTL(%d.%d) = %v, want %v", tc.major, tc.minor, got, tc.want)
		}
	}
	stmts := ttlStatements("kapkan", 90)
	if len(stmts) != len(tables) {
		t.Fatalf("%d statements for %d tables", len(stmts), len(tables))
	}
	if want := "ALTER TABLE kapkan.traffic MODIFY TTL day + toIntervalDay(90)"; !strings.Contains(strings.Join(stmts, "\n"), want) {
		t.Errorf("statements %q lack %q", stmts, want)
	}
}
