package main

import (
	"math"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/settlekit/settle/internal/paysim"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestPhysicalBound(t *testing.T) {
	d := delays{latency: 0.1, upload: 20, share: 30, distribution: 10}
	w := dayWork{payments: 100, nettedRefunds: 10, files: 50, shares: 50, wxRequests: 3000}
	bound, inf, wx := physicalBound(w, rates{payProtocol: 50, infinia: 50, wechat: 300}, d)
	// (100+10)/50+0.1 | 0.1 | 20+1+0.1 | 1+0.1+30+1+0.1
	if want := 2.3 + 0.1 + 21.1 + 32.2; !near(inf[0].secs+inf[1].secs+inf[2].secs+inf[3].secs, want) {
		t.Fatalf("Infinia chain %+v, want %.1f s", inf, want)
	}
	if want := 10.1 + 10 + 10.1; !near(wx, want) || !near(bound, 55.7) {
		t.Fatalf("WeChat chain %.2f (want %.1f), bound %.2f (want the Infinia chain, 55.7)", wx, want, bound)
	}
	// A WeChat-heavy day: its chain is the bound.
	w.wxRequests = 30000
	if bound, _, wx := physicalBound(w, rates{payProtocol: 50, infinia: 50, wechat: 300}, d); !near(bound, wx) || !near(wx, 210.2) {
		t.Fatalf("bound %.2f, WeChat chain %.2f: want both 210.2", bound, wx)
	}
	// Unlimited rates cost a latency; nothing to do costs nothing.
	if bound, _, _ := physicalBound(dayWork{payments: 10}, rates{}, d); !near(bound, 0.1) {
		t.Fatalf("bound %.2f, want 0.1", bound)
	}
}

func TestLimitOf(t *testing.T) {
	wx := paysim.ProviderRequests{LimitQPS: 300, SubMerchantLimitQPS: 30}
	if limit, reach := limitOf(wx, "wechat", 5, 0, 1000); limit != 150 || reach != 150 {
		t.Fatalf("5 sub-merchants: %v %v, want 150 (5 x 30)", limit, reach)
	}
	if limit, reach := limitOf(wx, "wechat", 100, 0, 200); limit != 300 || reach != 200 {
		t.Fatalf("100 sub-merchants, signing 200/s: %v %v, want 300 and 200", limit, reach)
	}
	if limit, reach := limitOf(paysim.ProviderRequests{}, "payprotocol", 0, 345, 482); limit != 0 || reach != 0 {
		t.Fatalf("unlimited Pay Protocol (no RSA): %v %v", limit, reach)
	}
	if _, reach := limitOf(paysim.ProviderRequests{}, "infinia", 0, 345, 482); reach != 345 {
		t.Fatalf("unlimited Infinia: reach %v, want the signing ceiling", reach)
	}
}

// TestClusterCPUCountsEndedChildren: the CPU time of a process tree counts
// a child that has ended (and been waited for) through the parent's
// cutime and cstime, as the postmaster's backends that came and went.
func TestClusterCPUCountsEndedChildren(t *testing.T) {
	ppid, _, _, err := procStat(os.Getpid())
	if err != nil || ppid != os.Getppid() {
		t.Fatalf("procStat: parent %d (want %d), %v", ppid, os.Getppid(), err)
	}
	before, err := clusterCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sh", "-c", "i=0; while [ $i -lt 300000 ]; do i=$((i+1)); done")
	if err := child.Run(); err != nil {
		t.Skip("no sh:", err)
	}
	used := child.ProcessState.UserTime() + child.ProcessState.SystemTime()
	after, err := clusterCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	// Ticks of 10 ms: allow two of rounding.
	if after-before < used-20*time.Millisecond {
		t.Fatalf("the tree's CPU grew %s while a child that ended used %s", after-before, used)
	}
}

// TestWithFailedFillsTheGap: the stage a failed run names goes in the
// longest gap between the stages that logged their time.
func TestWithFailedFillsTheGap(t *testing.T) {
	t0 := time.Date(2026, 11, 23, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	stages := []stageTime{{name: "extract", start: at(0), end: at(1)}, {name: "upload", start: at(1), end: at(10)},
		{name: "reconcile", start: at(60), end: at(70)}}
	got := withFailed(stages, "distribute")
	if len(got) != 4 || got[2].name != "distribute (failed)" || got[2].took != 50 || !got[2].start.Equal(at(10)) {
		t.Fatalf("%+v", got)
	}
	if got := withFailed(got[:2], ""); len(got) != 2 {
		t.Fatalf("nothing failed: %+v", got)
	}
}

// A run that needs a person for something it named (exit 4) does not fail
// the benchmark; any other failure does, and so does an exit 4 that named
// nothing.
func TestExitsOK(t *testing.T) {
	ok := runResult{label: "first run"}
	held := runResult{label: "first run", exit: 4, attention: []string{"NEEDS A PERSON: order X held"}}
	for _, c := range []struct {
		first, second runResult
		want          bool
	}{
		{ok, ok, true},
		{held, held, true},
		{held, ok, true},
		{runResult{exit: 4}, ok, false},
		{ok, runResult{exit: 1}, false},
		{runResult{exit: 3, attention: held.attention}, ok, false},
	} {
		if err := exitsOK(c.first, c.second, "dir"); (err == nil) != c.want {
			t.Errorf("exits %d, %d (%d lines): %v, want ok %v", c.first.exit, c.second.exit, len(c.first.attention), err, c.want)
		}
	}
}

// The database's CPU at a time is interpolated between the samples that
// measured it; one whose reading failed (0) is not taken for a cluster
// that used nothing, so that a run's total is its stages' sum.
func TestDBCPUAtSkipsUnmeasuredSamples(t *testing.T) {
	t0 := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	b := &bench{samples: []sample{{at: at(0), dbCPU: 10 * time.Second}, {at: at(1), dbCPU: 20 * time.Second},
		{at: at(2)}, {at: at(3), dbCPU: 40 * time.Second}}}
	for _, c := range []struct {
		s    int
		want time.Duration
	}{{-1, 10 * time.Second}, {0, 10 * time.Second}, {1, 20 * time.Second}, {2, 30 * time.Second}, {3, 40 * time.Second}, {9, 40 * time.Second}} {
		if got := b.dbCPUAt(at(c.s)); got != c.want {
			t.Errorf("at %d s: %v, want %v", c.s, got, c.want)
		}
	}
	if got := (&bench{samples: []sample{{at: at(0)}}}).dbCPUAt(at(1)); got != 0 {
		t.Errorf("no sample measured it: %v, want 0", got)
	}
}
