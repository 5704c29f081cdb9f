package infiniapay

import (
	"context"
	"maps"
	"slices"
	"sync"

	"github.com/settlekit/settle/pipeline"
)

// MemLedger is what the distribute stage reads and writes of the ledger,
// in memory, for the package's external tests (a stage against the fake
// over HTTP): the candidates given, each one's revenue shares by attempt.
// A candidate with a revenue share not failed is no candidate any more
// (its items are netted into it), as in the ledger.
type MemLedger struct {
	*planStore

	emu     sync.Mutex
	effects []pipeline.Effect // id = index+1
	paid    map[string]int64  // "seller currency" -> what its succeeded revenue shares paid
}

// NewMemLedger is a ledger whose run may pay the candidates cands.
func NewMemLedger(cands []pipeline.PayoutCandidate) *MemLedger {
	return &MemLedger{planStore: &planStore{cands: cands, carried: map[string]string{}, planned: map[string]int64{}}, paid: map[string]int64{}}
}

// Effects returns the revenue shares planned, by id.
func (s *MemLedger) Effects() []pipeline.Effect {
	s.emu.Lock()
	defer s.emu.Unlock()
	return slices.Clone(s.effects)
}

// Paid returns what the succeeded revenue shares paid, by "seller
// currency".
func (s *MemLedger) Paid() map[string]int64 {
	s.emu.Lock()
	defer s.emu.Unlock()
	return maps.Clone(s.paid)
}

// Carried returns the reasons candidates were carried for, by "seller
// currency".
func (s *MemLedger) Carried() map[string]string {
	s.planStore.mu.Lock()
	defer s.planStore.mu.Unlock()
	return maps.Clone(s.planStore.carried)
}

// latest is the index of subject's latest revenue share, -1 when none.
// s.emu is held.
func (s *MemLedger) latest(subject string) int {
	at := -1
	for i, e := range s.effects {
		if e.Subject == subject && (at < 0 || e.Attempt > s.effects[at].Attempt) {
			at = i
		}
	}
	return at
}

func (s *MemLedger) EachPayoutCandidate(ctx context.Context, run *pipeline.Run, chs []pipeline.Channel, provider string, fn func(pipeline.PayoutCandidate) error) error {
	for _, p := range s.cands {
		s.emu.Lock()
		at := s.latest(RevenueShareSubject(run.Key.Date, p.SellerID, p.Currency))
		netted := at >= 0 && s.effects[at].State != pipeline.EffectFailed
		s.emu.Unlock()
		if netted {
			continue
		}
		if err := fn(p); err != nil {
			return err
		}
	}
	return nil
}

func (s *MemLedger) LatestFailed(context.Context, int64, string) ([]pipeline.Effect, error) {
	s.emu.Lock()
	defer s.emu.Unlock()
	var out []pipeline.Effect
	for _, e := range s.effects {
		if at := s.latest(e.Subject); s.effects[at].ID == e.ID && e.State == pipeline.EffectFailed {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *MemLedger) LatestEffect(_ context.Context, _, subject string) (pipeline.Effect, bool, error) {
	s.emu.Lock()
	defer s.emu.Unlock()
	if at := s.latest(subject); at >= 0 {
		return s.effects[at], true, nil
	}
	return pipeline.Effect{}, false, nil
}

func (s *MemLedger) PlanPayout(_ context.Context, _ *pipeline.Run, _ string, _ []pipeline.Channel, e pipeline.Effect) (pipeline.Effect, error) {
	return s.PlanEffect(context.Background(), e)
}

func (s *MemLedger) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	s.emu.Lock()
	defer s.emu.Unlock()
	if at := s.latest(e.Subject); at >= 0 && s.effects[at].Attempt == e.Attempt {
		return s.effects[at], nil
	}
	e.ID, e.State = int64(len(s.effects)+1), pipeline.EffectPlanned
	s.effects = append(s.effects, e)
	return e, nil
}

func (s *MemLedger) MarkSent(_ context.Context, id int64) error {
	s.emu.Lock()
	defer s.emu.Unlock()
	e := &s.effects[id-1]
	e.State, e.Sends = pipeline.EffectSent, e.Sends+1
	return nil
}

func (s *MemLedger) RecordOutcome(_ context.Context, id int64, state pipeline.EffectState, ref, lastErr string) error {
	s.emu.Lock()
	defer s.emu.Unlock()
	e := &s.effects[id-1]
	e.State, e.ProviderRef, e.LastError = state, ref, lastErr
	return nil
}

func (s *MemLedger) OpenEffectsAfter(_ context.Context, _ int64, _ string, after int64, n int) ([]pipeline.Effect, error) {
	s.emu.Lock()
	defer s.emu.Unlock()
	var out []pipeline.Effect
	for _, e := range s.effects {
		if e.ID > after && !e.State.Final() && len(out) < n {
			out = append(out, e)
		}
	}
	return out, nil
}

func (s *MemLedger) EffectsByID(_ context.Context, ids []int64) ([]pipeline.Effect, error) {
	s.emu.Lock()
	defer s.emu.Unlock()
	out := make([]pipeline.Effect, len(ids))
	for i, id := range ids {
		out[i] = s.effects[id-1]
	}
	return out, nil
}

func (s *MemLedger) PayoutSucceeded(_ context.Context, _ *pipeline.Run, seller string, cur pipeline.Currency, _ []pipeline.Channel, e pipeline.Effect) error {
	s.emu.Lock()
	defer s.emu.Unlock()
	s.paid[seller+" "+string(cur)] += e.Amount
	return nil
}

func (s *MemLedger) PayoutFailed(context.Context, *pipeline.Run, string, pipeline.Currency, []pipeline.Channel, pipeline.Effect, string) error {
	return nil
}

// AccountOf is the candidates' account of the seller.
func (s *MemLedger) AccountOf(_ context.Context, _ int64, _, seller string) (string, error) {
	for _, p := range s.cands {
		if p.SellerID == seller {
			return p.Account, nil
		}
	}
	return "", nil
}

// UploadLedger is what the upload stage reads and writes of the ledger,
// in memory, for the package's external tests: trade files an earlier
// run built and uploaded (their uploads succeeded), Infinia's answer
// about each to ask; nothing more to build.
type UploadLedger struct {
	*statusStore

	emu     sync.Mutex
	uploads []pipeline.Effect // id = index+1
}

// NewUploadLedger is a ledger of the files, each uploaded by an earlier
// run.
func NewUploadLedger(files []pipeline.TradeFile) *UploadLedger {
	s := &UploadLedger{statusStore: &statusStore{files: slices.Clone(files)}}
	for i, f := range files {
		s.uploads = append(s.uploads, pipeline.Effect{ID: int64(i + 1), Kind: KindUpload, Subject: UploadSubject(f.Date, f.SellerID, f.Currency, f.Attempt),
			Attempt: 1, Key: f.RequestNo, Currency: f.Currency, State: pipeline.EffectSucceeded, Sends: 1})
	}
	return s
}

// NewUnsentUploadLedger is a ledger of the files, built and none
// uploaded yet: the upload stage plans and sends each.
func NewUnsentUploadLedger(files []pipeline.TradeFile) *UploadLedger {
	return &UploadLedger{statusStore: &statusStore{files: slices.Clone(files)}}
}

// Files returns the trade files as the ledger holds them.
func (s *UploadLedger) Files() []pipeline.TradeFile {
	s.statusStore.mu.Lock()
	defer s.statusStore.mu.Unlock()
	return slices.Clone(s.statusStore.files)
}

// Uploads returns the files' uploads, by id.
func (s *UploadLedger) Uploads() []pipeline.Effect {
	s.emu.Lock()
	defer s.emu.Unlock()
	return slices.Clone(s.uploads)
}

func (s *UploadLedger) AccountsAt(context.Context, int64, string) (map[string]string, error) {
	out := map[string]string{}
	for _, f := range s.Files() {
		out[f.SellerID] = f.ProviderSellerID
	}
	return out, nil
}

// EachUnfiled: every item is in a file.
func (s *UploadLedger) EachUnfiled(context.Context, int64, []pipeline.Channel, func(pipeline.Payable, int, int) error) error {
	return nil
}

func (s *UploadLedger) PlanEffect(_ context.Context, e pipeline.Effect) (pipeline.Effect, error) {
	s.emu.Lock()
	defer s.emu.Unlock()
	for _, u := range s.uploads {
		if u.Key == e.Key {
			return u, nil
		}
	}
	e.ID, e.State = int64(len(s.uploads)+1), pipeline.EffectPlanned
	s.uploads = append(s.uploads, e)
	return e, nil
}

func (s *UploadLedger) MarkSent(_ context.Context, id int64) error {
	s.emu.Lock()
	defer s.emu.Unlock()
	e := &s.uploads[id-1]
	e.State, e.Sends = pipeline.EffectSent, e.Sends+1
	return nil
}

func (s *UploadLedger) RecordOutcome(_ context.Context, id int64, state pipeline.EffectState, ref, lastErr string) error {
	s.emu.Lock()
	defer s.emu.Unlock()
	e := &s.uploads[id-1]
	e.State, e.ProviderRef, e.LastError = state, ref, lastErr
	return nil
}
