package engine

// tableKey identifies a window: an address and direction, or a protected
// prefix's total (kindTotal) and direction.
type tableKey struct {
	addr [16]byte
	meta uint8 // direction | kind<<1
}

const kindTotal = 1 << 1

// hashKey mixes a key into 64 bits (multiply-xorshift over two words).
func hashKey(k *tableKey) uint64 {
	lo := uint64(k.addr[0]) | uint64(k.addr[1])<<8 | uint64(k.addr[2])<<16 | uint64(k.addr[3])<<24 |
		uint64(k.addr[4])<<32 | uint64(k.addr[5])<<40 | uint64(k.addr[6])<<48 | uint64(k.addr[7])<<56
	hi := uint64(k.addr[8]) | uint64(k.addr[9])<<8 | uint64(k.addr[10])<<16 | uint64(k.addr[11])<<24 |
		uint64(k.addr[12])<<32 | uint64(k.addr[13])<<40 | uint64(k.addr[14])<<48 | uint64(k.addr[15])<<56
	h := lo*0x9e3779b97f4a7c15 ^ (hi+uint64(k.meta))*0xc2b2ae3d27d4eb4f
	h ^= h >> 32
	h *= 0xd6e8feb86659fd93
	h ^= h >> 29
	return h
}

// index is an open-addressing (linear probing) index from keys to entry
// numbers. slots hold entry+1; 0 is empty. Deletion shifts later entries
// back, so no tombstones accumulate.
type index struct {
	slots []uint32
	mask  uint64
	count int
}

func newIndex(capacity int) index {
	n := 16
	for n*3/4 < capacity {
		n *= 2
	}
	return index{slots: make([]uint32, n), mask: uint64(n - 1)}
}

// insert adds entry e under hash h; the key must not be present. The caller
// grows the index first when needed.
func (ix *index) insert(h uint64, e uint32) {
	for i := h & ix.mask; ; i = (i + 1) & ix.mask {
		if ix.slots[i] == 0 {
			ix.slots[i] = e + 1
			ix.count++
			return
		}
	}
}

// needsGrow reports whether one more insert would pass 3/4 load.
func (ix *index) needsGrow() bool { return (ix.count+1)*4 > len(ix.slots)*3 }
