package main

import (
	"os"
	"strings"
	"syscall"
)

// stackStartSetting is the Go runtime's GODEBUG setting that starts each
// new goroutine's stack at the average size the last collection scanned
// (rounded up to a power of two), on by default. Settle keeps about a
// thousand goroutines at a time (HTTP connections, requests in flight,
// calls waiting on a pacer), most of them using less than 8 KiB of stack
// and a few much more; once the average crosses about 7 KiB, every new
// goroutine starts at 16 KiB and keeps it (a stack shrinks only below a
// quarter used). A 1,000,000-order day crossed it and a 100,000-order day
// did not: 1,075 goroutines held 17.5 MB of stacks at the million's peak,
// 16 KiB each, against 10.3 MB for 1,047 at 100,000 (PERFORMANCE.md, "Stacks at
// the size they need"). With the setting off a goroutine starts at the
// runtime's minimum and grows to what it uses, so the stacks follow what
// the goroutines do, not the size of the day.
const stackStartSetting = "adaptivestackstart"

// withFixedStackStart returns environ with stackStartSetting turned off in
// GODEBUG, and true; or environ and false when GODEBUG already names the
// setting (whatever its value: the operator's choice stands).
func withFixedStackStart(environ []string) ([]string, bool) {
	const key = "GODEBUG="
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key); ok && strings.Contains(","+v, ","+stackStartSetting+"=") {
			return environ, false
		}
	}
	out := make([]string, 0, len(environ)+1)
	set := key + stackStartSetting + "=0"
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, key); ok {
			if v != "" {
				set = kv + "," + stackStartSetting + "=0"
			}
			continue
		}
		out = append(out, kv)
	}
	return append(out, set), true
}

// execWithFixedStackStart replaces the process, once, with settle itself
// run with stackStartSetting off: the runtime reads that setting only as
// the process starts, and a //go:debug line cannot name it. The process
// keeps its id, arguments and the rest of its environment (a pod's
// signals reach the same process). When GODEBUG names the setting
// already, as it does after the exec, or the exec fails, settle runs on as
// it is.
func execWithFixedStackStart() {
	env, ok := withFixedStackStart(os.Environ())
	if !ok {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env) // returns only if it failed
}
