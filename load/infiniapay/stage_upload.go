package infiniapay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/settlekit/settle/pipeline"
)

// UploadStage builds the run's trade-detail files (one per seller and
// currency), uploads each through the intent-first protocol (c.Parallel
// at a time over the SFTP session), and asks Infinia about the status of
// every file not final in waves, paced under Infinia's limits (c.Pacer),
// until each is accepted or refused or c.Wait (for all of them together)
// is over. A refused file's rows become rejects with Infinia's reason, and
// its seller is not paid on it.
func UploadStage(c StageConfig) pipeline.StageFunc {
	c.defaults()
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		files, err := buildTradeFiles(ctx, &c, run)
		if err != nil {
			return "", fmt.Errorf("build trade files: %w", err)
		}
		if len(files) > 0 {
			if err := c.SFTP.Connect(ctx); err != nil {
				return "", fmt.Errorf("%d trade files to upload: %w", len(files), err)
			}
		}
		// Each file once, in files: the maps point into it (a day of
		// 20,000 sellers has some 90,000 files).
		byKey := make(map[string]*pipeline.TradeFile, len(files))
		sender := &uploadSender{c: &c, byKey: byKey}
		effects := make([]pipeline.Effect, 0, len(files))
		before := make(map[string]int, len(files))
		var uploaded atomic.Int64
		for i := range files {
			f := &files[i]
			byKey[f.RequestNo] = f
			e, err := c.Store.PlanEffect(ctx, pipeline.Effect{RunID: run.ID, Kind: KindUpload, Subject: UploadSubject(run.Key.Date, f.SellerID, f.Currency, f.Attempt),
				Attempt: 1, Key: f.RequestNo, Currency: f.Currency, Amount: f.SellerMinor})
			if err != nil {
				return "", err
			}
			effects = append(effects, e)
			byKey[e.Key], before[e.Key] = f, e.Sends
		}
		progress := pipeline.ProgressFrom(ctx)
		progress.Restart(int64(len(files)))
		// The uploads: the engine over the SFTP session, c.Parallel files
		// at a time; an upload whose end is unknown is asked about (status,
		// then the file under its final name) in waves.
		en := &pipeline.Engine{Store: c.Store, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: c.Parallel}), Poll: c.Poll, Wait: c.Wait,
			Sender: func(pipeline.Effect) pipeline.EffectSender { return sender },
			Final: func(_ context.Context, e pipeline.Effect) error {
				progress.Add(1)
				if e.Sends > before[e.Key] {
					uploaded.Add(1)
				}
				return nil
			},
			Error: func(ctx context.Context, e pipeline.Effect, err error) error {
				f := *byKey[e.Key]
				if pipeline.SubjectOnly(err) {
					// Infinia refuses to answer about this one file: hold it.
					progress.Add(1)
					return holdFile(ctx, &c, f, fmt.Sprintf("upload of %s could not be confirmed: %v", f.Name, err))
				}
				return fmt.Errorf("upload %s: %w", f.Name, err)
			},
		}
		res, err := en.Run(ctx, effects)
		if err != nil {
			return "", err
		}
		if err := pipeline.StillProcessing("trade file uploads", "Infinia's SFTP server", c.Wait, res.Pending); err != nil {
			return "", err
		}
		accepted, refused, problems, err := awaitUploads(ctx, &c, run)
		if err != nil {
			return "", err
		}
		summary := fmt.Sprintf("%d trade files (%d uploaded now), %d accepted, %d refused by Infinia", len(files), uploaded.Load(), accepted, refused)
		return summary, pipeline.NeedsPerson(problems)
	}
}

// buildTradeFiles writes a new file for every seller and currency with
// items in no file yet (the next attempt after the date's earlier files),
// records it with its items, and returns every file of the run that is not
// final yet, rebuilt: the bytes are a function of the ledger, so a resumed
// run - on another machine too - rebuilds exactly what it recorded
// (RecordTradeFile checks the digest).
func buildTradeFiles(ctx context.Context, c *StageConfig, run *pipeline.Run) ([]pipeline.TradeFile, error) {
	sellers, err := c.Store.AccountsAt(ctx, run.ID, SellerAccount)
	if err != nil {
		return nil, err
	}
	groups, err := c.Store.Payables(ctx, run.ID, "recorded", c.Channels)
	if err != nil {
		return nil, err
	}
	files, err := c.Store.TradeFiles(ctx, run.ID)
	if err != nil {
		return nil, err
	}
	type key struct {
		seller string
		cur    pipeline.Currency
	}
	last := map[key]int{}
	for _, f := range files {
		last[key{f.SellerID, f.Currency}] = max(last[key{f.SellerID, f.Currency}], f.Attempt)
	}
	progress := pipeline.ProgressFrom(ctx) // a phase of its own: after a verification's
	progress.Restart(int64(len(groups)))
	for _, g := range groups {
		progress.Add(1)
		account := sellers[g.SellerID]
		if account == "" {
			return nil, fmt.Errorf("seller %s has no Infinia seller id recorded with run %d: cannot name its trade file", g.SellerID, run.ID)
		}
		f := pipeline.TradeFile{RunID: run.ID, Date: run.Key.Date, SellerID: g.SellerID, ProviderSellerID: account, Currency: g.Currency,
			Attempt: last[key{g.SellerID, g.Currency}] + 1, SellerMinor: g.Amount, Items: int(g.Items)}
		f.RequestNo = TradeRequestNo(f.Date, f.SellerID, f.Currency, f.Attempt)
		if f.Name, err = c.FileName(c.PlatformID, account, f.Currency, f.Date, f.RequestNo); err != nil {
			return nil, pipeline.E(pipeline.KindUsage, "seller "+g.SellerID, err)
		}
		if err := writeTradeFile(ctx, c, run, &f, ""); err != nil {
			return nil, err
		}
		if _, err := c.Store.RecordTradeFile(ctx, f, c.Channels); err != nil {
			return nil, err
		}
	}
	if len(groups) > 0 {
		if files, err = c.Store.TradeFiles(ctx, run.ID); err != nil {
			return nil, err
		}
	}
	var open []pipeline.TradeFile
	for _, f := range files {
		if f.Status == StatusSuccess || f.Status == StatusFailed {
			continue
		}
		f.ProviderSellerID = sellers[f.SellerID]
		want := f.SHA256
		if err := writeTradeFile(ctx, c, run, &f, f.RequestNo); err != nil {
			return nil, err
		}
		if f.SHA256 != want {
			return nil, fmt.Errorf("trade file %s was recorded with sha256 %s, rebuilt as %s: refusing to change an uploaded file", f.Name, want, f.SHA256)
		}
		open = append(open, f)
	}
	return open, nil
}

// writeTradeFile writes f under the work directory from the run's
// recorded items of its seller and currency in the file requestNo ("": in
// no file yet), and sets its digest, size and rows.
func writeTradeFile(ctx context.Context, c *StageConfig, run *pipeline.Run, f *pipeline.TradeFile, requestNo string) error {
	var err error
	dir := filepath.Join(c.WorkDir, run.Key.Date.String())
	_, f.SHA256, f.Bytes, f.Rows, err = c.WriteFile(dir, f.Name, func(emit func(pipeline.TradeRow) error) error {
		return c.Store.ItemsForTrade(ctx, run.ID, f.SellerID, f.Currency, c.Channels, requestNo, func(sp pipeline.Split) error {
			for _, row := range c.Rows(sp) {
				if err := emit(row); err != nil {
					return err
				}
			}
			return nil
		})
	})
	return err
}

// uploadSender uploads trade files; it implements EffectSender for
// KindUpload. An upload's outcome is known by asking Infinia about the
// requestNo, then by looking for the file under its final name.
type uploadSender struct {
	c     *StageConfig
	byKey map[string]*pipeline.TradeFile
}

func (u *uploadSender) file(e pipeline.Effect) (pipeline.TradeFile, string, error) {
	f, ok := u.byKey[e.Key]
	if !ok {
		return pipeline.TradeFile{}, "", fmt.Errorf("no trade file for upload %s", e.Key)
	}
	return *f, filepath.Join(u.c.WorkDir, f.Date.String(), f.Name), nil
}

func (u *uploadSender) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	f, path, err := u.file(e)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	err = u.c.SFTP.Upload(ctx, f.Name, f.Bytes, f.SHA256, func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return pipeline.Outcome{}, err
	}
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
}

func (u *uploadSender) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	f, _, err := u.file(e)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	if _, _, err := u.c.API.UploadStatus(ctx, f.RequestNo); err == nil {
		return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
	} else if !errors.Is(err, pipeline.ErrNotFound) {
		return pipeline.Outcome{}, err
	}
	size, ok, err := u.c.SFTP.Stat(ctx, f.Name)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	if ok && size == f.Bytes {
		return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
	}
	return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
}

// awaitUploads asks Infinia about every uploaded file that is not final,
// in waves paced under Infinia's limits (c.Pacer), the first at once (a
// re-run's files may be decided), and applies the answers to the items.
// The wait is the Engine's: it begins when the first wave is done (every
// file asked once, however long that took at Infinia's limits), and a file
// still processing is asked again, c.Poll after its last question, only
// if that falls within c.Wait of it. A wave of tens of thousands of files
// takes minutes at the limit: a deadline counted from before the first
// wave gave up on files that had been asked about once.
func awaitUploads(ctx context.Context, c *StageConfig, run *pipeline.Run) (accepted, refused int, problems []string, err error) {
	var deadline time.Time
	due := map[string]time.Time{} // requestNo -> when it may be asked again
	for {
		files, err := c.Store.TradeFiles(ctx, run.ID)
		if err != nil {
			return 0, 0, nil, err
		}
		accepted, refused, problems = 0, 0, nil
		var (
			mu      sync.Mutex
			open    []pipeline.TradeFile // not final, asked about in this wave
			pending []pipeline.TradeFile // not final after it
			wake    time.Time
		)
		// Only the files not final are asked about (each question takes
		// one of Infinia's tokens); the final ones are counted as they are.
		now := time.Now()
		for _, f := range files {
			switch {
			case f.Status == StatusSuccess:
				accepted++
			case f.Status == StatusFailed:
				refused++
				problems = append(problems, fmt.Sprintf("trade file %s refused by Infinia: %s", f.Name, f.Reason))
			case due[f.RequestNo].After(now), !deadline.IsZero() && due[f.RequestNo].After(deadline):
				pending = append(pending, f) // asked a moment ago, or for the last time
			default:
				open = append(open, f)
			}
		}
		err = c.Pacer.Each(ctx, len(open), nil, func(ctx context.Context, i int) error {
			f, err := checkUpload(ctx, c, run, open[i])
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			switch f.Status {
			case StatusSuccess:
				accepted++
			case StatusFailed:
				refused++
				problems = append(problems, fmt.Sprintf("trade file %s refused by Infinia: %s", f.Name, f.Reason))
			default:
				pending = append(pending, f)
				due[f.RequestNo] = time.Now().Add(c.Poll)
			}
			return nil
		})
		if err != nil {
			return accepted, refused, problems, err
		}
		if len(pending) == 0 {
			return accepted, refused, problems, nil
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(c.Wait) // every file asked once: the wait begins
		}
		for _, f := range pending {
			if d := due[f.RequestNo]; !d.After(deadline) && (wake.IsZero() || d.Before(wake)) {
				wake = d
			}
		}
		if wake.IsZero() {
			sort.Slice(pending, func(i, j int) bool { return pending[i].Name < pending[j].Name })
			return accepted, refused, problems, fmt.Errorf("%w: %d trade files still processing at Infinia after %s (first: %s); re-run to resolve",
				pipeline.ErrStillProcessing, len(pending), c.Wait, pending[0].Name)
		}
		if d := time.Until(wake); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return accepted, refused, problems, ctx.Err()
			case <-t.C:
			}
		}
	}
}

// holdFile records f as refused for this run with reason: its items not
// yet refused are held with the reason, for a person; the run goes on
// with the other files and ends needing a person (the file's status is
// FAILED, so awaitUploads lists it).
func holdFile(ctx context.Context, c *StageConfig, f pipeline.TradeFile, reason string) error {
	f.Status = StatusFailed
	if f.Reason == "" {
		f.Reason = reason
	}
	return c.Store.FinishTradeFile(ctx, f, nil, "held", "held: "+reason)
}

// checkUpload asks Infinia about one file and records a final answer.
func checkUpload(ctx context.Context, c *StageConfig, run *pipeline.Run, f pipeline.TradeFile) (pipeline.TradeFile, error) {
	status, url, err := c.API.UploadStatus(ctx, f.RequestNo)
	if errors.Is(err, pipeline.ErrNotFound) {
		return f, nil // landed, not yet picked up
	}
	if pipeline.SubjectOnly(err) {
		final := f
		final.Status, final.Reason = StatusFailed, fmt.Sprintf("status query refused: %v", err)
		return final, holdFile(ctx, c, final, "trade file "+f.Name+": Infinia refused its status query: "+err.Error())
	}
	if err != nil {
		return f, fmt.Errorf("upload status of %s: %w", f.Name, err)
	}
	final := f
	final.Status, final.ErrorURL = status, url
	switch status {
	case StatusSuccess:
		if err := c.Store.FinishTradeFile(ctx, final, nil, "uploaded", ""); err != nil {
			return f, err
		}
		return final, nil
	case StatusFailed:
		rows, err := c.API.ErrorRows(ctx, url)
		if pipeline.SubjectOnly(err) {
			// Refused, but its error file cannot be read (another layout,
			// say): the whole file is held, with what was wrong.
			final.Reason = fmt.Sprintf("refused; its error file could not be read: %v", err)
			return final, holdFile(ctx, c, final, "trade file "+f.Name+" was refused by Infinia, and its error file could not be read: "+err.Error())
		}
		if err != nil {
			return f, fmt.Errorf("error file of %s: %w", f.Name, err)
		}
		final.Reason = fmt.Sprintf("%d rows refused", len(rows))
		if len(rows) > 0 {
			final.Reason += fmt.Sprintf(", first %s: %s", rows[0].OrderNo, rows[0].Reason)
		}
		if err := c.Store.FinishTradeFile(ctx, final, rows, "held", "held: trade file "+f.Name+" was refused by Infinia"); err != nil {
			return f, err
		}
		return final, nil
	default:
		return f, nil // still processing
	}
}
