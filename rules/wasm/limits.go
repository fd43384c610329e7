package wasm

import (
	"fmt"
	"time"
)

// Limits bound what one module may use. The zero value of a field means its
// default.
type Limits struct {
	// MemoryMB is the most linear memory an instance may grow to.
	MemoryMB int
	// Timeout is the longest a call may take, waiting for a free instance
	// included; a call still running then is interrupted.
	Timeout time.Duration
	// Instances is how many instances are kept; each call uses one alone.
	Instances int
}

// Defaults and bounds of Limits.
const (
	DefaultMemoryMB  = 64
	DefaultTimeout   = time.Second
	DefaultInstances = 2

	MinMemoryMB  = 4
	MaxMemoryMB  = 1024
	MinTimeout   = time.Millisecond
	MaxTimeout   = 10 * time.Second
	MaxInstances = 16
)

// WithDefaults fills the fields left at zero.
func (l Limits) WithDefaults() Limits {
	if l.MemoryMB == 0 {
		l.MemoryMB = DefaultMemoryMB
	}
	if l.Timeout == 0 {
		l.Timeout = DefaultTimeout
	}
	if l.Instances == 0 {
		l.Instances = DefaultInstances
	}
	return l
}

// Check returns what is out of bounds (after defaults), or nil.
func (l Limits) Check() error {
	l = l.WithDefaults()
	switch {
	case l.MemoryMB < MinMemoryMB || l.MemoryMB > MaxMemoryMB:
		return fmt.Errorf("memory_mb %d (want %d to %d)", l.MemoryMB, MinMemoryMB, MaxMemoryMB)
	case l.Timeout < MinTimeout || l.Timeout > MaxTimeout:
		return fmt.Errorf("timeout %s (want %s to %s)", l.Timeout, MinTimeout, MaxTimeout)
	case l.Instances < 1 || l.Instances > MaxInstances:
		return fmt.Errorf("instances %d (want 1 to %d)", l.Instances, MaxInstances)
	}
	return nil
}

// pages is the memory cap in 64 KiB WebAssembly pages.
func (l Limits) pages() uint32 { return uint32(l.MemoryMB) * 16 }
