package demo

import (
	"encoding/binary"
	"net/netip"
)

// hostPerm is a seeded bijection on [0, 2^bits) (bits at most 64): it
// scatters the n-th host of a prefix over the prefix's addresses without a
// table, so a million hosts cost no memory and no cache misses. Each step
// (multiply by an odd number, add, xor with a right shift, all modulo
// 2^bits) is a bijection, so their composition is one too.
type hostPerm struct {
	mask, m1, m2, key uint64
	shift             uint
}

func newHostPerm(bits int, seed uint64) hostPerm {
	bits = min(bits, 64)
	mask := ^uint64(0)
	if bits < 64 {
		mask = 1<<bits - 1
	}
	return hostPerm{mask: mask, m1: splitmix(seed) | 1, m2: splitmix(seed+1) | 1, key: splitmix(seed + 2),
		shift: uint(bits/2 + 1)}
}

// at returns the offset of host i (taken modulo 2^bits).
func (p *hostPerm) at(i uint64) uint64 {
	x := i & p.mask
	x = (x*p.m1 + p.key) & p.mask
	x ^= x >> p.shift
	x = (x * p.m2) & p.mask
	x ^= x >> p.shift
	return x
}

// splitmix is SplitMix64's output function, to derive the permutation's
// constants from the seed.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	return x ^ x>>31
}

// hostSpace places the Hosts background destinations of a scenario with
// DistinctHosts: host i is in prefix i mod len(Prefixes), at offset
// perm(i / len(Prefixes)) from the prefix's first address.
type hostSpace struct {
	n        uint64
	prefixes []hostPrefix
}

type hostPrefix struct {
	is4    bool
	hi, lo uint64 // the prefix's first address, as 128 bits (IPv4: lo holds it)
	perm   hostPerm
}

func newHostSpace(s *Scenario) hostSpace {
	hs := hostSpace{n: uint64(s.Hosts)}
	for i, p := range s.Prefixes {
		hp := hostPrefix{is4: p.Addr().Is4()}
		bits := p.Addr().BitLen() - p.Bits()
		if hp.is4 {
			a := p.Addr().As4()
			hp.lo = uint64(binary.BigEndian.Uint32(a[:]))
		} else {
			a := p.Addr().As16()
			hp.hi, hp.lo = binary.BigEndian.Uint64(a[:8]), binary.BigEndian.Uint64(a[8:])
		}
		hp.perm = newHostPerm(bits, s.Seed^uint64(i)<<32)
		hs.prefixes = append(hs.prefixes, hp)
	}
	return hs
}

// addr returns host i's address.
func (hs *hostSpace) addr(i uint64) netip.Addr {
	np := uint64(len(hs.prefixes))
	p := &hs.prefixes[i%np]
	off := p.perm.at(i / np)
	if p.is4 {
		var b [4]byte
		binary.BigEndian.PutUint32(b[:], uint32(p.lo|off))
		return netip.AddrFrom4(b)
	}
	var b [16]byte
	binary.BigEndian.PutUint64(b[:8], p.hi)
	binary.BigEndian.PutUint64(b[8:], p.lo|off)
	return netip.AddrFrom16(b)
}
