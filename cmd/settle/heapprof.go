package main

import (
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"time"
)

// heapProfileEnv names the environment variable that, when set to a file
// path, makes settle write a heap profile to <path>.<pid> each time its
// live heap reaches a new high (by 5%), so the file ends holding the
// profile at the process's peak. A diagnostic for memory work (README,
// Performance); off when unset.
const heapProfileEnv = "SETTLE_HEAPPROFILE"

// profileHeapPeaks samples the live heap (as the last GC measured it,
// like the profile) every 100ms until ctx is done
// and writes a heap profile to path.<pid> at each new high.
func profileHeapPeaks(ctx context.Context, path string) {
	path = fmt.Sprintf("%s.%d", path, os.Getpid())
	sample := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	var peak uint64
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		metrics.Read(sample)
		if v := sample[0].Value.Uint64(); v > peak+peak/20 {
			peak = v
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
	}
}

// cpuProfileEnv names the environment variable that, when set to a file
// path, makes settle write a CPU profile of the whole process to
// <path>.<pid>. A diagnostic for speed work (README, Performance); off
// when unset.
const cpuProfileEnv = "SETTLE_CPUPROFILE"

// profileCPU starts a CPU profile into path.<pid> and returns what stops
// it (a no-op when it could not start).
func profileCPU(path string) (stop func()) {
	f, err := os.Create(fmt.Sprintf("%s.%d", path, os.Getpid()))
	if err != nil {
		return func() {}
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		_ = f.Close()
	}
}
