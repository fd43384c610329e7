package main

import (
	"fmt"
	"os"
	"runtime/pprof"
	"strconv"
	"syscall"
	"time"
)

// Profiling for the load harness, off unless asked for:
//
//	KAPKAN_CPUPROFILE=FILE KAPKAN_CPUPROFILE_SECONDS=N kapkan run ...
//
// writes a CPU profile of the first N seconds (default 30) of the process
// to FILE, readable with `go tool pprof -top bin/kapkan FILE`. It is read
// here, in an init, so that no subcommand has to know about it.
func init() {
	path := os.Getenv("KAPKAN_CPUPROFILE")
	if path == "" {
		return
	}
	secs, err := strconv.Atoi(os.Getenv("KAPKAN_CPUPROFILE_SECONDS"))
	if err != nil || secs <= 0 {
		secs = 30
	}
	stop, err := startCPUProfile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "kapkan: KAPKAN_CPUPROFILE: %v\n", err)
		return
	}
	time.AfterFunc(time.Duration(secs)*time.Second, stop)
}

// startCPUProfile starts a CPU profile into path and returns what stops it.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

// processCPUSeconds returns the user and system CPU time of this process.
func processCPUSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}
