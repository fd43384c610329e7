package ingest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/kapkan-io/kapkan/flow"
)

// ListenerConfig configures one UDP listener.
type ListenerConfig struct {
	// Name labels the listener in logs and metrics (sflow, netflow).
	Name string
	// Listen is host:port.
	Listen string
	// Workers is the number of sockets (SO_REUSEPORT) and reading
	// goroutines; 0 means one per CPU.
	Workers int
	// ReadBuffer is SO_RCVBUF in bytes; 0 leaves the kernel default.
	ReadBuffer int
	// ReadBatch is how many datagrams one recvmmsg call may return; 0 means
	// 64. (1 reads one datagram per system call; kept for measurements.)
	ReadBatch int
}

// defaultReadBatch is how many datagrams one recvmmsg call may return.
const defaultReadBatch = 64

// maxDatagram is the largest datagram read; longer ones are truncated by the
// kernel and fail to decode (counted).
const maxDatagram = 65535

// Listener receives flow datagrams on a UDP port and decodes them.
type Listener struct {
	cfg  ListenerConfig
	dec  *Decoder
	sink flow.Sink
	pool *flow.Pool
	log  *slog.Logger
	// flight is the flight recorder (nil: none).
	flight *Flight

	conns  []*net.UDPConn
	port   int
	unlock func() // releases this listener's share of the port lock

	readErrors  prometheus.Counter
	truncated   prometheus.Counter
	kernelDrops *socketDropsCollector
	errLog      sampledLogger
}

// NewListener opens the listener's sockets (so a port in use fails at start
// up, not later) but reads nothing until Run.
func NewListener(cfg ListenerConfig, dec *Decoder, sink flow.Sink, pool *flow.Pool, deps Deps) (*Listener, error) {
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.GOMAXPROCS(0)
	}
	if cfg.ReadBatch <= 0 {
		cfg.ReadBatch = defaultReadBatch
	}
	log := deps.Logger
	if log == nil {
		log = slog.Default()
	}
	if pool == nil {
		pool = flow.DefaultPool
	}
	l := &Listener{
		cfg: cfg, dec: dec, sink: sink, pool: pool, flight: deps.Flight,
		log: log.With("component", "ingest", "listener", cfg.Name),
		readErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "kapkan_ingest_read_errors_total",
			Help:        "Socket read errors.",
			ConstLabels: prometheus.Labels{"listener": cfg.Name},
		}),
		truncated: prometheus.NewCounter(prometheus.CounterOpts{
			Name:        "kapkan_ingest_truncated_datagrams_total",
			Help:        "Datagrams longer than the read buffer, cut by the kernel.",
			ConstLabels: prometheus.Labels{"listener": cfg.Name},
		}),
	}
	l.errLog.every = 10 * time.Second
	lc := net.ListenConfig{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		err := c.Control(func(fd uintptr) {
			if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1); serr != nil {
				return
			}
			if cfg.ReadBuffer > 0 {
				// SO_RCVBUFFORCE passes net.core.rmem_max when we may; fall
				// back to SO_RCVBUF (capped by the kernel) otherwise.
				if unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, cfg.ReadBuffer) != nil {
					serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, cfg.ReadBuffer)
				}
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	// A known port is locked before binding, so that a refused start never
	// takes a datagram from the process that holds it; port 0 after, on the
	// port the kernel chose.
	if _, p, err := net.SplitHostPort(cfg.Listen); err == nil {
		if port, _ := strconv.Atoi(p); port > 0 {
			if l.unlock, err = lockPort("udp", port); err != nil {
				return nil, fmt.Errorf("listen %s on %s: %w", cfg.Name, cfg.Listen, err)
			}
		}
	}
	for i := 0; i < cfg.Workers; i++ {
		addr := cfg.Listen
		if i > 0 {
			// Later sockets bind the port the first one got (matters for ":0").
			host, _, _ := net.SplitHostPort(cfg.Listen)
			addr = net.JoinHostPort(host, strconv.Itoa(l.port))
		}
		pc, err := lc.ListenPacket(context.Background(), "udp", addr)
		if err != nil {
			l.Close()
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("listen %s on %s: the port is already in use by a program other than kapkan (%w)", cfg.Name, cfg.Listen, err)
			}
			return nil, fmt.Errorf("listen %s on %s: %w", cfg.Name, cfg.Listen, err)
		}
		conn := pc.(*net.UDPConn)
		l.conns = append(l.conns, conn)
		if i == 0 {
			l.port = conn.LocalAddr().(*net.UDPAddr).Port
			if l.unlock == nil {
				if l.unlock, err = lockPort("udp", l.port); err != nil {
					l.Close()
					return nil, fmt.Errorf("listen %s on %s: %w", cfg.Name, cfg.Listen, err)
				}
			}
		}
	}
	if cfg.ReadBuffer > 0 {
		if got := socketReadBuffer(l.conns[0]); got > 0 && got < cfg.ReadBuffer {
			l.log.Warn("socket read buffer is smaller than configured (raise net.core.rmem_max)",
				"configured", cfg.ReadBuffer, "got", got)
		}
	}
	l.kernelDrops = &socketDropsCollector{port: l.port, listener: cfg.Name,
		desc: prometheus.NewDesc("kapkan_ingest_socket_drops_total",
			"Datagrams the kernel dropped on the listener's sockets because their buffers were full (from /proc/net/udp).",
			nil, prometheus.Labels{"listener": cfg.Name})}
	if deps.Registry != nil {
		for _, c := range []prometheus.Collector{l.readErrors, l.truncated, l.kernelDrops} {
			if err := deps.Registry.Register(c); err != nil {
				l.Close()
				return nil, fmt.Errorf("register %s listener metrics: %w", cfg.Name, err)
			}
		}
	}
	return l, nil
}

// Addr returns the bound address (useful with port 0).
func (l *Listener) Addr() netip.AddrPort {
	if len(l.conns) == 0 {
		return netip.AddrPort{}
	}
	return l.conns[0].LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close closes the sockets and releases the listener's share of the port
// lock. It may be called more than once.
func (l *Listener) Close() {
	for _, c := range l.conns {
		c.Close()
	}
	if l.unlock != nil {
		l.unlock()
	}
}

// Run reads and decodes until ctx ends.
func (l *Listener) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, c := range l.conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.worker(ctx, c)
		}()
	}
	l.log.Info("listening", "address", l.Addr().String(), "workers", len(l.conns))
	<-ctx.Done()
	l.Close()
	wg.Wait()
	return nil
}

func (l *Listener) worker(ctx context.Context, c *net.UDPConn) {
	rc, err := c.SyscallConn()
	if err != nil {
		l.log.Error("socket cannot be read", "err", err)
		return
	}
	r := newBatchReader(rc, l.cfg.ReadBatch, maxDatagram)
	batcher := NewBatcher(l.pool, l.sink)
	var ring *FlightRing
	if l.flight != nil {
		ring = l.flight.Ring()
	}
	for {
		n, err := r.read()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				batcher.Flush()
				return
			}
			l.readErrors.Inc()
			l.errLog.warn(l.log, "socket read failed", "err", err)
			continue
		}
		now := time.Now() // one clock read per batch of datagrams
		if ring != nil {
			ring.Begin() // one lock per batch read, never per record
			for i := range n {
				if payload, _, src := r.datagram(i); src.IsValid() {
					ring.Add(src, now, payload)
				}
			}
			ring.End()
		}
		for i := range n {
			payload, truncated, src := r.datagram(i)
			if truncated {
				l.truncated.Inc()
			}
			if !src.IsValid() {
				continue
			}
			if _, err := l.dec.Decode(payload, src, now, batcher); err != nil {
				l.errLog.warn(l.log, "decode failed", "err", err)
			}
		}
		batcher.Flush()
	}
}

// socketReadBuffer returns the effective SO_RCVBUF (the kernel reports twice
// the requested value), or 0 if it cannot be read.
func socketReadBuffer(c *net.UDPConn) int {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var v int
	_ = rc.Control(func(fd uintptr) {
		v, _ = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
	})
	return v / 2
}

// sampledLogger logs at most one line per interval; hot-path errors are
// also counted, so nothing is lost by sampling the log.
type sampledLogger struct {
	mu    sync.Mutex
	every time.Duration
	last  time.Time
	quiet int
}

func (s *sampledLogger) warn(log *slog.Logger, msg string, args ...any) {
	s.mu.Lock()
	now := time.Now()
	if now.Sub(s.last) < s.every {
		s.quiet++
		s.mu.Unlock()
		return
	}
	quiet := s.quiet
	s.last, s.quiet = now, 0
	s.mu.Unlock()
	if quiet > 0 {
		args = append(args, "suppressed", quiet)
	}
	log.Warn(msg, args...)
}

// socketDropsCollector reads the kernel's per-socket drop counters for the
// listener's port from /proc/net/udp and /proc/net/udp6 at scrape time.
type socketDropsCollector struct {
	port     int
	listener string
	desc     *prometheus.Desc
}

func (s *socketDropsCollector) Describe(ch chan<- *prometheus.Desc) { ch <- s.desc }

func (s *socketDropsCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(s.desc, prometheus.CounterValue, float64(SocketDrops(s.port)))
}

// SocketDrops sums the drop counters of every UDP socket bound to port, as
// /proc/net/udp and /proc/net/udp6 report them (0 where they cannot be read).
func SocketDrops(port int) uint64 {
	var total uint64
	for _, p := range []string{"/proc/net/udp", "/proc/net/udp6"} {
		f, err := os.Open(p)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 13 {
				continue
			}
			local := fields[1]
			i := strings.LastIndexByte(local, ':')
			if i < 0 {
				continue
			}
			lp, err := strconv.ParseUint(local[i+1:], 16, 16)
			if err != nil || int(lp) != port {
				continue
			}
			drops, err := strconv.ParseUint(fields[len(fields)-1], 10, 64)
			if err == nil {
				total += drops
			}
		}
		f.Close()
	}
	return total
}
