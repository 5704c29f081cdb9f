package main

import (
	"crypto/rsa"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/settlekit/settle/internal/paysim"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/seed"
)

// TestInfiniaRefusingOurKeyMidRunSendsNothingMore: our key pair changes at
// Infinia after the run's second revenue share (Infinia refuses our
// signature from then on, SYS-002 "invalid signature"). The run sent
// every revenue share left, each refused. Now it sends nothing more
// (one request in flight at a time here: --parallel 1) and ends exit 2
// in one line telling to check --infinia-private-key-file. The share
// refused is unknown, recorded refused (no money moved), none failed. The
// re-run with the key put right pays each seller once, under the first
// requestNo of each share.
func TestInfiniaRefusingOurKeyMidRunSendsNothingMore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "6", "--seed", "2")
	const balance = 1_000_000_00
	sim := e.sim(nil, 6, nil, balance)
	const rotateAt = 2
	shares, ours := rotateInfiniaKeyAt(t, sim, rotateAt)

	out, code := e.runInfinia(sim, "--parallel", "1")
	if code != 2 || !strings.Contains(out, "--infinia-private-key-file") || strings.Count(out, "refused our credentials") != 1 {
		t.Fatalf("exit %d, want 2 with one line telling to check our key:\n%s", code, out)
	}
	if n := shares.Load(); n != rotateAt {
		t.Errorf("%d revenue shares sent, want %d: nothing more once Infinia refused our key", n, rotateAt)
	}
	kind := infiniapay.KindRevenueShare
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = $1 AND state = 'failed'`, kind); n != 0 {
		t.Errorf("%d revenue shares failed: a refusal of our key is none of the payout", n)
	}
	if n := e.count(`SELECT count(*) FROM settle.effects e WHERE kind = $1 AND state = 'unknown'
		AND EXISTS (SELECT 1 FROM settle.effect_events v WHERE v.effect_id = e.id AND v.cause = 'refused')`, kind); n != 1 {
		t.Errorf("%d revenue shares unknown and recorded refused, want the one refused", n)
	}

	// The key put right: each seller paid once, under each share's first
	// requestNo.
	sim.Infinia.RegisterPlatformKey(&ours.PublicKey)
	shares.Store(-1 << 30)
	if out, code := e.runInfinia(sim); code != 0 {
		t.Fatalf("re-run: exit %d:\n%s", code, out)
	}
	e.checkPaidOnce(sim, balance)
	if n := e.count(`SELECT count(*) FROM settle.effects WHERE kind = $1 AND (state <> 'succeeded' OR attempt <> 1)`, kind); n != 0 {
		t.Errorf("%d revenue shares not succeeded at their first attempt", n)
	}
}

// rotateInfiniaKeyAt has Infinia take another key of ours (refusing our
// signature from then on) when the at-th revenue share request reaches
// it, through a proxy in front of sim's Infinia. It returns the count of
// revenue share requests and our key, for Infinia to take back.
func rotateInfiniaKeyAt(t *testing.T, sim *paysim.Sim, at int64) (*atomic.Int64, *rsa.PrivateKey) {
	t.Helper()
	ours, other := ourKeyAndAnother(t, sim.Config.OurKeyFile)
	var shares atomic.Int64
	sim.Config.InfiniaURL = countingProxy(t, sim.Config.InfiniaURL, &shares,
		func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, infiniapay.APIRevenueShare) },
		func(n int64) {
			if n == at {
				sim.Infinia.RegisterPlatformKey(&other.PublicKey)
			}
		})
	return &shares, ours
}

// TestInfiniaRefusingOurKeyMidRunStillSaysWhatItHeld: a seller whose
// Infinia binding is FROZEN is held for a person while the revenue shares
// are planned; Infinia then refuses our key at the second share. The run
// ends exit 2, its last line naming the flags to check, and the seller
// held is said as a stage's problems are on other exits: in the stage's
// one NEEDS A PERSON line, not in the last line. Before, the stop dropped
// it: the night's log said nothing of the seller held, which only the
// re-run, once the key was put right, told.
func TestInfiniaRefusingOurKeyMidRunStillSaysWhatItHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "6", "--seed", "2")
	sim := e.sim(nil, 6, nil, 1_000_000_00)
	sim.Infinia.SetBinding(seed.InfiniaID(3), "FROZEN")
	rotateInfiniaKeyAt(t, sim, 2)
	out, code := e.runInfinia(sim, "--parallel", "1")
	person, last := personAndLast(out)
	if code != 2 || len(last) != 1 || !strings.Contains(last[0], "--infinia-private-key-file") || strings.Contains(last[0], "FROZEN") {
		t.Fatalf("exit %d, want 2 with one last line naming --infinia-private-key-file alone:\n%s", code, out)
	}
	if len(person) != 1 || !strings.Contains(person[0], "stage=distribute") || !strings.Contains(person[0], "seller S00003") ||
		!strings.Contains(person[0], "Infinia binding is FROZEN") {
		t.Fatalf("%d NEEDS A PERSON lines, want the distribute stage's one naming seller S00003 held for its FROZEN binding:\n%s", len(person), out)
	}
	// The first share, still processing at Infinia when the second was
	// refused, is said too (only a run of this date asks about it), and
	// the line's summary is the stage's, not the skipped channels' alone.
	if !strings.Contains(person[0], "1 revenue shares sent and not final when the stage stopped") {
		t.Errorf("the NEEDS A PERSON line does not say the share sent and not final at the stop:\n%s", out)
	}
	if _, summary, _ := strings.Cut(person[0], ` summary="`); !strings.Contains(summary, "revenue shares paid") || !strings.Contains(summary, "stopped: Infinia refused our key") {
		t.Errorf("the NEEDS A PERSON line does not carry the distribute stage's summary:\n%s", out)
	}
}

// TestInfiniaRefusingOurKeyForUploadStatusStillSaysWhatItHeld: Infinia
// refuses to report on one seller's trade file (SYS-005: the file held
// for a person, asked again by the next run) in the first wave of status
// questions, every file still processing; our key pair then changes at
// Infinia, at the first question of the second wave. The run ends exit 2,
// its last line naming --infinia-private-key-file alone, and the file
// held is said as on other exits: in the upload stage's NEEDS A PERSON
// line, with the stage's summary (the files not final counted). Before,
// the stop dropped it: the night's log said nothing of the file held,
// which only the re-run told.
func TestInfiniaRefusingOurKeyForUploadStatusStillSaysWhatItHeld(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.mustSettle("seed", "--date", testDate, "--orders", "60", "--sellers", "6", "--seed", "2")
	sim := e.sim(nil, 6, nil, 1_000_000_00)
	sim.Infinia.RefuseStatusOf(seed.InfiniaID(2), "SYS-005", "refused by the test")
	_, other := ourKeyAndAnother(t, sim.Config.OurKeyFile)
	var asked, rotated atomic.Int64
	sim.Config.InfiniaURL = countingProxy(t, sim.Config.InfiniaURL, &asked,
		func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, infiniapay.APIUploadStatus) },
		func(n int64) {
			// The first wave asks each file once (every one still
			// processing, or refused to report on): the next question
			// is the second wave's first.
			if n == e.count(`SELECT count(*) FROM settle.trade_files`)+1 && rotated.Add(1) == 1 {
				sim.Infinia.RegisterPlatformKey(&other.PublicKey)
			}
		})
	out, code := e.runInfinia(sim, "--parallel", "1")
	person, last := personAndLast(out)
	if code != 2 || len(last) != 1 || !strings.Contains(last[0], "--infinia-private-key-file") || strings.Contains(last[0], "SYS-005") {
		t.Fatalf("exit %d, want 2 with one last line naming --infinia-private-key-file alone:\n%s", code, out)
	}
	if rotated.Load() != 1 {
		t.Fatalf("the key never changed at Infinia (%d status questions):\n%s", asked.Load(), out)
	}
	if len(person) != 1 || !strings.Contains(person[0], "stage=upload") || !strings.Contains(person[0], "TD_PLATDEMO_"+seed.InfiniaID(2)) ||
		!strings.Contains(person[0], "SYS-005") || !strings.Contains(person[0], "not final, stopped: Infinia refused our key") {
		t.Fatalf("%d NEEDS A PERSON lines, want the upload stage's one naming seller %s's file held for SYS-005, with the stage's summary:\n%s",
			len(person), seed.InfiniaID(2), out)
	}
}
