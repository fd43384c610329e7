package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// UDP GSO limits: segments per send (UDP_MAX_SEGMENTS is 64 on older
// kernels) and bytes per send (an IP datagram's 64 KiB).
const (
	gsoMaxSegments = 64
	gsoMaxBytes    = 60000
)

// gsoSender sends a run of datagrams as one buffer with UDP_SEGMENT: the
// kernel cuts it into datagrams of the segment size (the last may be
// shorter) below the socket layer, so the receiver reads the same
// datagrams as from one send each, and the sender pays for one send.
type gsoSender struct {
	rc  syscall.RawConn
	sa  unix.Sockaddr
	oob []byte
	on  bool // false once the kernel refused
}

func newGSOSender(conn *net.UDPConn, to netip.AddrPort) (*gsoSender, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, err
	}
	g := &gsoSender{rc: rc, on: true, oob: make([]byte, unix.CmsgSpace(2))}
	if a := to.Addr(); a.Is4() || a.Is4In6() {
		g.sa = &unix.SockaddrInet4{Port: int(to.Port()), Addr: a.Unmap().As4()}
	} else {
		g.sa = &unix.SockaddrInet6{Port: int(to.Port()), Addr: a.As16()}
	}
	h := (*unix.Cmsghdr)(unsafe.Pointer(&g.oob[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	return g, nil
}

// gsoRun returns the end of the run of datagrams from i that one GSO send
// can carry: next to each other in memory, all of the first one's length
// but the last, which may be shorter.
func gsoRun(dgs [][]byte, i int) int {
	size := len(dgs[i])
	if size == 0 {
		return i + 1
	}
	total := size
	j := i + 1
	for j < len(dgs) && j-i < gsoMaxSegments && len(dgs[j-1]) == size {
		d := dgs[j]
		if len(d) == 0 || len(d) > size || total+len(d) > gsoMaxBytes ||
			unsafe.Pointer(unsafe.SliceData(d)) != unsafe.Add(unsafe.Pointer(unsafe.SliceData(dgs[j-1])), size) {
			break
		}
		total += len(d)
		j++
	}
	return j
}

// send sends run (from gsoRun) and returns how many datagrams it carried:
// all or none. When the kernel refuses UDP_SEGMENT itself, it turns GSO
// off and sends nothing, so the caller sends the run again without it.
func (g *gsoSender) send(run [][]byte) (int, error) {
	size := len(run[0])
	total := size*(len(run)-1) + len(run[len(run)-1])
	buf := unsafe.Slice(unsafe.SliceData(run[0]), total)
	binary.NativeEndian.PutUint16(g.oob[unix.CmsgLen(0):], uint16(size))
	var serr error
	err := g.rc.Write(func(fd uintptr) bool {
		_, serr = unix.SendmsgN(int(fd), buf, g.oob, g.sa, 0)
		return !errors.Is(serr, unix.EAGAIN)
	})
	if err != nil {
		return 0, err
	}
	switch {
	case serr == nil:
		return len(run), nil
	case errors.Is(serr, unix.EIO), errors.Is(serr, unix.EINVAL), errors.Is(serr, unix.ENOPROTOOPT), errors.Is(serr, unix.EOPNOTSUPP):
		g.on = false
		return 0, fmt.Errorf("udp gso: %w", serr)
	}
	return 0, serr
}
