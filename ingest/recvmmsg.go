package ingest

import (
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// mmsghdr is Linux's struct mmsghdr: one message header and the length the
// kernel received into it. Go pads the struct to Msghdr's alignment as C
// does.
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
}

// batchReader reads up to len(bufs) datagrams per recvmmsg(2) call into
// buffers and source addresses it owns, so a read allocates nothing. It
// replaces golang.org/x/net's ReadBatch, which allocates a net.UDPAddr per
// datagram: at 150 000 datagrams/s that garbage drafted the reader into the
// collector's mark assists while a cold engine was growing its tables (see
// docs/performance.md).
type batchReader struct {
	rc    syscall.RawConn
	hdrs  []mmsghdr
	iovs  []unix.Iovec
	names []unix.RawSockaddrInet6 // large enough for AF_INET and AF_INET6
	bufs  [][]byte

	// Result of the last call of fn.
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool // r.recv, bound once
}

func newBatchReader(rc syscall.RawConn, batch, size int) *batchReader {
	r := &batchReader{
		rc:    rc,
		hdrs:  make([]mmsghdr, batch),
		iovs:  make([]unix.Iovec, batch),
		names: make([]unix.RawSockaddrInet6, batch),
		bufs:  make([][]byte, batch),
	}
	for i := range batch {
		r.bufs[i] = make([]byte, size)
		r.iovs[i].Base = &r.bufs[i][0]
		r.iovs[i].SetLen(size)
		h := &r.hdrs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.fn = r.recv
	return r
}

// read blocks (in the runtime's poller, not in the kernel) until at least
// one datagram is queued and returns how many it read.
func (r *batchReader) read() (int, error) {
	if err := r.rc.Read(r.fn); err != nil {
		return 0, err
	}
	if r.errno != 0 {
		return 0, r.errno
	}
	return r.n, nil
}

// recv makes one non-blocking recvmmsg call; false asks the poller to wait
// until the socket is readable.
func (r *batchReader) recv(fd uintptr) bool {
	for i := range r.hdrs {
		r.hdrs[i].hdr.Namelen = uint32(unsafe.Sizeof(r.names[i]))
		r.hdrs[i].hdr.Flags = 0
		r.hdrs[i].n = 0
	}
	for {
		n, _, e := unix.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])),
			uintptr(len(r.hdrs)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			r.n, r.errno = int(n), 0
			return true
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		default:
			r.n, r.errno = 0, e
			return true
		}
	}
}

// datagram returns the i-th datagram of the last read, whether the kernel
// cut it, and its source address (IPv4-mapped IPv6 sources unmapped).
func (r *batchReader) datagram(i int) (payload []byte, truncated bool, src netip.Addr) {
	h := &r.hdrs[i]
	payload = r.bufs[i][:h.n]
	truncated = h.hdr.Flags&unix.MSG_TRUNC != 0
	if h.hdr.Namelen == 0 {
		return payload, truncated, netip.Addr{} // no source: the caller skips it
	}
	sa := &r.names[i]
	switch sa.Family {
	case unix.AF_INET:
		v4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		src = netip.AddrFrom4(v4.Addr)
	case unix.AF_INET6:
		src = netip.AddrFrom16(sa.Addr).Unmap()
	}
	return payload, truncated, src
}
