package main

import (
	"bytes"
	"encoding/json"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

// TestReplaySend plays a capture into a UDP socket as fast as possible:
// the socket receives exactly the capture's flow datagrams, byte for byte,
// from the exporter's loopback address, and the summary line says so.
func TestReplaySend(t *testing.T) {
	capture := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	var want [][]byte
	if _, err := ingest.ReadCapture(capture, func(d ingest.Datagram) error {
		if ingest.DetectFormat(d.Payload) != flow.FormatUnknown {
			want = append(want, bytes.Clone(d.Payload))
		}
		return nil
	}); err != nil || len(want) == 0 {
		t.Fatalf("%d datagrams: %v", len(want), err)
	}
	pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	_ = pc.SetReadBuffer(8 << 20)
	target := pc.LocalAddr().(*net.UDPAddr).AddrPort().String()

	type result struct {
		out, stderr string
		code        int
	}
	done := make(chan result, 1)
	go func() {
		out, stderr, code := replay(t, "--send", target, "--speed", "0", capture)
		done <- result{out, stderr, code}
	}()
	got, buf := 0, make([]byte, 65535)
	for got < len(want) {
		_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Errorf("after %d of %d datagrams: %v", got, len(want), err)
			break
		}
		if from.Addr().String() != "127.0.2.1" || !bytes.Equal(buf[:n], want[got]) {
			t.Fatalf("datagram %d from %s differs from the capture's (exporter 192.0.2.1)", got, from)
		}
		got++
	}
	r := <-done
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.out), "\n")
	if len(lines) != 1 {
		t.Fatalf("want one summary line, got:\n%s", r.out)
	}
	var sum sendSummary
	if err := json.Unmarshal([]byte(lines[0]), &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Type != "send_summary" || sum.Target != target || sum.Datagrams != len(want) || sum.SendErrors != 0 ||
		len(sum.Exporters) != 1 || sum.Exporters[0] != (sendExporter{"192.0.2.1", "127.0.2.1", len(want), sum.Bytes, 0}) {
		t.Errorf("summary %s, want %d datagrams from 192.0.2.1 as 127.0.2.1", lines[0], len(want))
	}
}

func TestReplaySendRefusesBadInput(t *testing.T) {
	capture := filepath.Join(testutil.RepoRoot(t), "testdata", "captures", "sflow-udp-flood", "capture.pcap")
	for _, c := range []struct {
		name string
		args []string
		msg  string // in stderr
	}{
		{"no port", []string{"--send", "127.0.0.1", capture}, `--send "127.0.0.1": want HOST:PORT`},
		{"bad port", []string{"--send", "127.0.0.1:notaport", capture}, `--send "127.0.0.1:notaport": want HOST:PORT`},
		{"port 0", []string{"--send", "127.0.0.1:0", capture}, "no port"},
		{"broadcast", []string{"--send", "192.0.2.255:2055", capture}, "broadcast"},
		{"not this host", []string{"--send", "198.51.100.7:2055", capture}, "must be an address of this host"},
		{"with against", []string{"--send", "127.0.0.1:2055", "--against", "rules/", capture}, "cannot be combined with --against"},
		{"with records and config", []string{"--records", "--config", "x.yaml", "--send", "127.0.0.1:2055", capture}, "cannot be combined with --config, --records"},
		{"speed without send", []string{"--speed", "2", capture}, "give --send HOST:PORT too"},
		{"speed NaN", []string{"--send", "127.0.0.1:2055", "--speed", "NaN", capture}, "--speed NaN"},
		{"no capture", []string{"--send", "127.0.0.1:2055"}, "usage: kapkan replay"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, stderr, code := replay(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.msg) || out != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 2 and %q", code, out, stderr, c.msg)
			}
		})
	}
}
