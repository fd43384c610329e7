package ingest

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// SO_REUSEPORT lets the listener open one socket per worker on one port, but
// it lets any other process of the same user join too, and the kernel then
// splits the exporters' datagrams between the processes: each would see part
// of the traffic and detect nothing right. So while a listener is open the
// process holds a lock on its UDP port: an abstract unix socket named
// "@kapkan/udp/<port>". The kernel frees it when the process ends, however it
// ends, so there is no stale lock file. The lock is per port, not per
// address: 0.0.0.0, [::] and a specific address of one port overlap, and two
// kapkan processes on different addresses of one port are refused as well.
// Abstract sockets belong to the network namespace, as the ports do.

// portLocks are the locks this process holds, shared by its listeners.
var portLocks = struct {
	sync.Mutex
	held map[string]*portLock
}{held: map[string]*portLock{}}

type portLock struct {
	ln   *net.UnixListener
	refs int
}

// lockName names the lock of a port.
func lockName(network string, port int) string {
	return "@kapkan/" + network + "/" + strconv.Itoa(port)
}

// errPortLocked is returned when another kapkan process holds the port.
var errPortLocked = errors.New("port held by another kapkan process")

// lockPort takes (or shares, within this process) the lock of a port. The
// returned function releases this share; it may be called more than once.
func lockPort(network string, port int) (release func(), err error) {
	name := lockName(network, port)
	portLocks.Lock()
	defer portLocks.Unlock()
	if pl, ok := portLocks.held[name]; ok {
		pl.refs++
		return releaser(name), nil
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			pid := "?"
			if p := lockHolder(name); p > 0 {
				pid = strconv.Itoa(p)
			}
			return nil, fmt.Errorf("%w: %s port %d is already used by another kapkan process (pid %s); "+
				"two processes on one port would each see part of the traffic", errPortLocked, network, port, pid)
		}
		return nil, fmt.Errorf("lock %s port %d: %w", network, port, err)
	}
	// Accept and drop the connections lockHolder makes, so that the
	// backlog never fills and later callers can still learn the pid.
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	portLocks.held[name] = &portLock{ln: ln, refs: 1}
	return releaser(name), nil
}

func releaser(name string) func() {
	var once sync.Once
	return func() {
		once.Do(func() {
			portLocks.Lock()
			defer portLocks.Unlock()
			pl := portLocks.held[name]
			if pl == nil {
				return
			}
			if pl.refs--; pl.refs == 0 {
				pl.ln.Close()
				delete(portLocks.held, name)
			}
		})
	}
}

// lockHolder returns the pid of the process holding a lock (the kernel
// records who listened), or 0 if it cannot be learnt.
func lockHolder(name string) int {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: name, Net: "unix"})
	if err != nil {
		return 0
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var pid int
	_ = rc.Control(func(fd uintptr) {
		if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
			pid = int(cred.Pid)
		}
	})
	return pid
}
