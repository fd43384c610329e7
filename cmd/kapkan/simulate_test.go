package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kapkan-io/kapkan/flow"
	"github.com/kapkan-io/kapkan/ingest"
	"github.com/kapkan-io/kapkan/internal/testutil"
)

var frameLine = regexp.MustCompile(`(?m)^Frame \d+:`)

func simulate(t *testing.T, args ...string) (simulateReport, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := cmdSimulate(context.Background(), args, &out, &errb)
	var r simulateReport
	if code == 0 {
		if err := json.Unmarshal(out.Bytes(), &r); err != nil {
			t.Fatalf("report %q: %v", out.String(), err)
		}
	}
	return r, errb.String(), code
}

const replayConfig = `
detection: {window: 5s, cooldown: 5s}
hostgroups:
  - name: customers
    prefixes: [203.0.113.0/24, "2001:db8:1::/48"]
    thresholds:
      incoming: {pps: 50000, mbps: 500}
`

// TestSimulateCaptureDetectsExactlyTheVictims writes a simulated capture
// in every format and replays it: exactly the scripted victims are
// detected, once each.
func TestSimulateCaptureDetectsExactlyTheVictims(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kapkan.yaml")
	if err := os.WriteFile(cfg, []byte(replayConfig), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"sflow5", "netflow5", "netflow9", "ipfix"} {
		t.Run(format, func(t *testing.T) {
			pcap := filepath.Join(dir, format+".pcap")
			args := []string{"--pcap", pcap, "--format", format, "--sampling", "512", "--hosts", "300", "--background-pps", "100000",
				"--duration", "25s", "--prefix", "203.0.113.0/24",
				"--attack", "syn-flood@203.0.113.7:300000:5s:10s",
				"--attack", "ntp-amplification@203.0.113.8:200000:8s:10s"}
			if format != "netflow5" {
				args = append(args, "--prefix", "2001:db8:1::/48", "--attack", "icmp-flood@[2001:db8:1::9]:200000:3s:10s")
			}
			rep, stderr, code := simulate(t, args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			attacks := strings.Count(strings.Join(args, " "), "--attack")
			if rep.Records == 0 || rep.Datagrams == 0 || len(rep.Attacks) != attacks {
				t.Fatalf("report %+v", rep)
			}
			for _, a := range rep.Attacks {
				if a.FirstSent == "" {
					t.Errorf("attack %s: no first record time", a.Target)
				}
			}
			out, stderr, code := replay(t, "--config", cfg, pcap)
			if code != 0 {
				t.Fatalf("replay exit %d: %s", code, stderr)
			}
			got := map[string]int{}
			for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
				var j struct{ Type, Target string }
				_ = json.Unmarshal([]byte(line), &j)
				if j.Type == "attack" {
					got[j.Target]++
				}
			}
			want := map[string]int{"203.0.113.7/32": 1, "203.0.113.8/32": 1}
			if format != "netflow5" {
				want["2001:db8:1::9/128"] = 1
			}
			if len(got) != len(want) {
				t.Fatalf("detected %v, want %v", got, want)
			}
			for k, v := range want {
				if got[k] != v {
					t.Fatalf("detected %v, want %v", got, want)
				}
			}
		})
	}
}

// TestSimulateTsharkReadsEveryFormat: what simulate writes is what
// Wireshark's dissectors read, without a malformed packet.
func TestSimulateTsharkReadsEveryFormat(t *testing.T) {
	tshark := testutil.Need(t, "tshark", "tshark")
	dir := t.TempDir()
	for _, format := range []string{"sflow5", "netflow5", "netflow9", "ipfix"} {
		pcap := filepath.Join(dir, format+".pcap")
		rep, stderr, code := simulate(t, "--pcap", pcap, "--format", format, "--sampling", "100", "--duration", "2s",
			"--background-pps", "50000", "--attack", "frag-flood@203.0.113.9:50000:0s:1s")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", format, code, stderr)
		}
		out, err := exec.Command(tshark, "-n", "-r", pcap, "-d", "udp.port==2055,cflow", "-d", "udp.port==6343,sflow", "-V").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: tshark: %v\n%s", format, err, out)
		}
		if bytes.Contains(out, []byte("Malformed")) {
			i := bytes.Index(out, []byte("Malformed"))
			t.Errorf("%s: tshark reports a malformed packet: %s", format, out[max(0, i-400):i+100])
		}
		if frames := len(frameLine.FindAll(out, -1)); int64(frames) != rep.Datagrams {
			t.Errorf("%s: tshark read %d frames, simulate wrote %d", format, frames, rep.Datagrams)
		}
	}
}

// TestSimulateSendsToACollector sends over loopback to a socket and decodes
// what arrives: from the generator with sendmmsg, and from pre-generated
// background with UDP GSO sends, which must arrive as the same separate
// datagrams.
func TestSimulateSendsToACollector(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		gso  bool // GSO sends must have happened
	}{
		{"generator", []string{"--gso=false"}, false},
		{"generator gso", nil, false},
		{"pregenerated sflow5", []string{"--pregenerate", "1s", "--hosts", "5000"}, true},
		{"pregenerated netflow9", []string{"--pregenerate", "1s", "--hosts", "5000", "--format", "netflow9", "--records-per-second", "20000",
			"--attack", "udp-flood@203.0.113.9:100000:200ms:500ms"}, true},
		{"pregenerated without gso", []string{"--pregenerate", "1s", "--gso=false"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			_ = pc.SetReadBuffer(8 << 20)
			to := pc.LocalAddr().(*net.UDPAddr).AddrPort()
			done := make(chan simulateReport, 1)
			go func() {
				args := append([]string{"--to", to.String(), "--duration", "1s", "--sampling", "100", "--background-pps", "100000"}, c.args...)
				r, stderr, code := simulate(t, args...)
				if code != 0 {
					t.Errorf("exit %d: %s", code, stderr)
				}
				done <- r
			}()
			dec := ingest.New(ingest.Options{}, ingest.Deps{})
			records := 0
			b := ingest.NewBatcher(nil, flow.SinkFunc(func(b *flow.Batch) { records += b.N; flow.DefaultPool.Put(b) }))
			buf := make([]byte, 65535)
			received := int64(0)
			for {
				_ = pc.SetReadDeadline(time.Now().Add(2 * time.Second))
				n, from, err := pc.ReadFromUDPAddrPort(buf)
				if err != nil {
					break
				}
				received++
				if _, err := dec.Decode(buf[:n], from.Addr(), time.Now(), b); err != nil {
					t.Fatalf("decode: %v", err)
				}
			}
			b.Flush()
			rep := <-done
			if rep.Datagrams == 0 || received != rep.Datagrams || int64(records) != rep.Records || rep.Records < 900 {
				t.Errorf("sent %d datagrams / %d records, received %d / %d", rep.Datagrams, rep.Records, received, records)
			}
			if c.gso && rep.GSOSends == 0 {
				t.Errorf("no GSO send: %+v", rep)
			}
		})
	}
}

func TestSimulateRefusesBadTargets(t *testing.T) {
	for _, to := range []string{"255.255.255.255:6343", "192.0.2.255:6343", "224.0.0.1:6343", "[ff02::1]:6343", "0.0.0.0:6343", "127.0.0.1:0"} {
		if _, _, code := simulate(t, "--to", to, "--duration", "1s"); code != 2 {
			t.Errorf("%s: exit %d, want 2", to, code)
		}
	}
	for _, bad := range [][]string{
		{"--to", "127.0.0.1:9", "--attack", "udp-flood@203.0.113.1:100"},
		{"--to", "127.0.0.1:9", "--attack", "nosuch@203.0.113.1:100:1s:1s"},
		{"--to", "127.0.0.1:9", "--format", "netflow5", "--attack", "udp-flood@[2001:db8::1]:100:1s:1s"},
		{"--to", "127.0.0.1:9", "--format", "cflow"},
		{"--duration", "1s"},
	} {
		if _, _, code := simulate(t, bad...); code == 0 {
			t.Errorf("%v accepted", bad)
		}
	}
	a, err := parseAttack("dns-amplification@[2001:db8::5]:1000:2s:3s")
	if err != nil || a.Target != netip.MustParseAddr("2001:db8::5") || a.PPS != 1000 || a.Start != 2*time.Second || a.Duration != 3*time.Second {
		t.Errorf("parsed %+v, %v", a, err)
	}
	// A prefix spreads the attack over its addresses (host bits dropped).
	for _, c := range []struct{ arg, carpet string }{
		{"udp-flood@198.51.100.7/24:300000:0s:30s", "198.51.100.0/24"},
		{"udp-flood@[2001:db8:1::/48]:300000:0s:30s", "2001:db8:1::/48"},
	} {
		a, err := parseAttack(c.arg)
		if err != nil || a.Carpet != netip.MustParsePrefix(c.carpet) || a.Target.IsValid() || a.Where() != c.carpet {
			t.Errorf("%s: parsed %+v, %v", c.arg, a, err)
		}
	}
	if _, err := parseAttack("udp-flood@198.51.100.0/33:1:0s:1s"); err == nil {
		t.Error("a /33 accepted")
	}
}
