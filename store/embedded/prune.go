package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Prune drops what is older than before (the rules of storetest), then,
// when Options.MaxBytes is set and the store uses more, the oldest history
// until it is under (see PruneToSize).
func (s *Store) Prune(ctx context.Context, before time.Time) error {
	if err := s.pruneAge(ctx, before); err != nil {
		return err
	}
	if s.opts.MaxBytes > 0 {
		if _, err := s.PruneToSize(ctx, s.opts.MaxBytes); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) pruneAge(ctx context.Context, before time.Time) error {
	if before.UnixNano() <= 0 {
		return nil
	}
	cut := ns(before)
	err := s.db.Update(func(tx *bolt.Tx) error {
		at, st, open, rates := tx.Bucket(bAttacks), tx.Bucket(bStarted), tx.Bucket(bOpen), tx.Bucket(bRates)
		mits, mitsOf := tx.Bucket(bMits), tx.Bucket(bMitsOf)
		// Only attacks started before the cut can have their newest event
		// before it.
		var drop [][]byte // start-index keys
		kept := map[uint64]bool{}
		c := st.Cursor()
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < cut; k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			id := binary.BigEndian.Uint64(k[8:])
			var r row
			if err := json.Unmarshal(at.Get(k[8:]), &r); err != nil {
				return fmt.Errorf("decode attack %d: %w", id, err)
			}
			if r.Last.Before(before) {
				drop = append(drop, bytes.Clone(k))
			} else {
				kept[id] = true
			}
		}
		for _, k := range drop {
			id := k[8:]
			if err := deletePrefix(rates, id); err != nil {
				return err
			}
			// Every mitigation naming the attack goes with it.
			mc := mitsOf.Cursor()
			for mk, _ := mc.Seek(id); mk != nil && bytes.HasPrefix(mk, id); mk, _ = mc.Seek(id) {
				if err := mits.Delete(mk[8:]); err != nil {
					return err
				}
				if err := mitsOf.Delete(mk); err != nil {
					return err
				}
			}
			for _, err := range []error{at.Delete(id), open.Delete(id), st.Delete(k)} {
				if err != nil {
					return err
				}
			}
		}
		// Other mitigations go by their own time, unless their attack is
		// kept.
		mc := mits.Cursor()
		for k, v := mc.First(); k != nil && binary.BigEndian.Uint64(k) < cut; {
			var m struct {
				AttackID uint64 `json:"attack_id"`
			}
			if err := json.Unmarshal(v, &m); err != nil {
				return fmt.Errorf("decode mitigation: %w", err)
			}
			if kept[m.AttackID] {
				k, v = mc.Next()
				continue
			}
			k = bytes.Clone(k)
			if err := mitsOf.Delete(append(u64(m.AttackID), k...)); err != nil {
				return err
			}
			if err := mc.Delete(); err != nil {
				return err
			}
			// Next after Delete may skip a key: seek past the deleted one.
			k, v = mc.Seek(k)
		}
		if err := deleteBefore(tx.Bucket(bReloads), cut); err != nil {
			return err
		}
		tr := tx.Bucket(bTraffic)
		return tr.ForEachBucket(func(name []byte) error {
			return deleteBefore(tr.Bucket(name), cut)
		})
	})
	if err != nil {
		return fmt.Errorf("prune store before %s: %w", before.Format(time.RFC3339), err)
	}
	return nil
}

// deleteBefore deletes the keys of b whose leading time is before cut.
func deleteBefore(b *bolt.Bucket, cut uint64) error {
	c := b.Cursor()
	for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < cut; k, _ = c.First() {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// deletePrefix deletes the keys of b that start with prefix.
func deletePrefix(b *bolt.Bucket, prefix []byte) error {
	c := b.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Seek(prefix) {
		if err := c.Delete(); err != nil {
			return err
		}
	}
	return nil
}

// Used returns the bytes the store uses: the file's size less the free
// pages bolt keeps for reuse. The file itself never shrinks (bolt reuses
// its free pages instead), so it stays at its high-water mark.
func (s *Store) Used() (int64, error) {
	var size int64
	err := s.db.View(func(tx *bolt.Tx) error {
		size = tx.Size()
		return nil
	})
	if err != nil {
		return 0, err
	}
	return size - int64(s.db.Stats().FreeAlloc), nil
}

// PruneToSize drops the oldest history, a tenth of the time it spans at a
// time, until the store uses at most maxBytes or nothing more can go (what
// is left is running attacks). It returns the bytes used at the end.
func (s *Store) PruneToSize(ctx context.Context, maxBytes int64) (int64, error) {
	for range 64 {
		used, err := s.Used()
		if err != nil || used <= maxBytes {
			return used, err
		}
		oldest, newest, err := s.span()
		if err != nil {
			return used, err
		}
		if oldest.IsZero() {
			return used, nil
		}
		cut := oldest.Add(max(newest.Sub(oldest)/10, time.Second))
		if err := s.pruneAge(ctx, cut); err != nil {
			return used, err
		}
		if after, err := s.Used(); err != nil || (after >= used && !cut.Before(newest)) {
			return after, err
		}
	}
	return s.Used()
}

// span returns the oldest and newest times of what the store holds (zero
// when empty).
func (s *Store) span() (oldest, newest time.Time, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		see := func(k []byte) {
			if len(k) < 8 {
				return
			}
			t := fromNS(k)
			if oldest.IsZero() || t.Before(oldest) {
				oldest = t
			}
			if t.After(newest) {
				newest = t
			}
		}
		for _, name := range [][]byte{bStarted, bMits, bReloads} {
			c := tx.Bucket(name).Cursor()
			k, _ := c.First()
			see(k)
			k, _ = c.Last()
			see(k)
		}
		tr := tx.Bucket(bTraffic)
		return tr.ForEachBucket(func(name []byte) error {
			c := tr.Bucket(name).Cursor()
			k, _ := c.First()
			see(k)
			k, _ = c.Last()
			see(k)
			return nil
		})
	})
	return oldest, newest, err
}
