package main

import (
	"context"
	"fmt"
	"os"
	"runtime/metrics"
	"runtime/pprof"
	"strings"
	"time"
)

// heapProfileEnv names the environment variable that, when set to a file
// path, makes settle write a heap profile to <path>.<pid> each time its
// live heap reaches a new high (by 5%), so the file ends holding the
// profile at the process's peak, and <path>.<pid>.mem and
// <path>.<pid>.goroutines at the peak of what the runtime holds (see
// profileHeapPeaks). A diagnostic for memory work (PERFORMANCE.md);
// off when unset.
const heapProfileEnv = "SETTLE_HEAPPROFILE"

// profileHeapPeaks samples the live heap (as the last GC measured it,
// like the profile) every 100ms until ctx is done
// and writes a heap profile to path.<pid> at each new high (by 5%). At
// each new high (by 2%) of what the runtime holds from the system (all its memory
// classes less what it has released) it also writes path.<pid>.mem: that
// breakdown by class, the goroutines, and the process's resident set
// (and path.<pid>.goroutines, their stacks counted), so
// a peak RSS far above the live heap can be read (stacks, heap not yet
// collected, heap free but not yet returned).
func profileHeapPeaks(ctx context.Context, path string) {
	path = fmt.Sprintf("%s.%d", path, os.Getpid())
	names := []string{
		"/gc/heap/live:bytes",
		"/memory/classes/total:bytes",
		"/memory/classes/heap/released:bytes",
		"/memory/classes/heap/objects:bytes",
		"/memory/classes/heap/unused:bytes",
		"/memory/classes/heap/free:bytes",
		"/memory/classes/heap/stacks:bytes",
		"/memory/classes/os-stacks:bytes",
		"/memory/classes/metadata/other:bytes",
		"/memory/classes/other:bytes",
		"/gc/heap/goal:bytes",
		"/sched/goroutines:goroutines",
	}
	sample := make([]metrics.Sample, len(names))
	for i, n := range names {
		sample[i].Name = n
	}
	var peak, heldPeak uint64
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
		if held := sample[1].Value.Uint64() - sample[2].Value.Uint64(); held > heldPeak+heldPeak/50 {
			heldPeak = held
			var b strings.Builder
			fmt.Fprintf(&b, "at %s\nheld from the system %d\n", time.Now().UTC().Format(time.RFC3339), held)
			for i, n := range names {
				if s := sample[i]; s.Value.Kind() == metrics.KindUint64 {
					fmt.Fprintf(&b, "%s %d\n", n, s.Value.Uint64())
				}
			}
			if st, err := os.ReadFile("/proc/self/status"); err == nil {
				for _, l := range strings.Split(string(st), "\n") {
					if strings.HasPrefix(l, "VmRSS") || strings.HasPrefix(l, "VmHWM") || strings.HasPrefix(l, "RssAnon") || strings.HasPrefix(l, "RssFile") {
						fmt.Fprintln(&b, l)
					}
				}
			}
			_ = os.WriteFile(path+".mem", []byte(b.String()), 0o644)
			if f, err := os.Create(path + ".goroutines"); err == nil {
				_ = pprof.Lookup("goroutine").WriteTo(f, 1)
				_ = f.Close()
			}
		}
	}
}

// cpuProfileEnv names the environment variable that, when set to a file
// path, makes settle write a CPU profile of the whole process to
// <path>.<pid>. A diagnostic for speed work (PERFORMANCE.md); off
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
