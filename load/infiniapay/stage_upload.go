package infiniapay

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/settlekit/settle/pipeline"
)

// UploadStage builds the run's trade-detail files (one per seller and
// currency), uploads each through the intent-first protocol (c.Parallel
// at a time over the SFTP session), and asks Infinia about the status of
// every file not final in waves, paced under Infinia's limits (c.Pacer),
// until each is accepted or refused or c.Wait (for all of them together)
// is over. A refused file's rows become rejects with Infinia's reason, and
// its seller is not paid on it.
//
// The stage holds the day's files a page at a time (uploadPage), however
// many sellers it has: they are built as the ledger's sums by seller and
// currency stream in, uploaded from the engine's feed of the run's open
// files, and asked about in keyset pages of those still open.
//
// A date that ended longer ago than Infinia's status query remembers
// (c.Memory) builds no new file (buildTradeFiles) and uploads none the
// ledger holds built and never uploaded (pipeline.HoldFirstSends: a
// backup taken between a file's build and its upload, restored), unless
// c.SendPastMemory: its requestNo may be one a run the ledger does not
// hold uploaded and Infinia forgot, which would count its orders twice.
// Such a file is left open, not asked about, for a person (exit 4); one
// uploaded before is asked about as ever.
//
// An Infinia that does not answer at all stops the stage: its questions
// (the engine's about uploads whose end is unknown, then each open file's
// status) share one breaker (pipeline.WithBreaker), and once
// pipeline.NotAnsweringAfter in a row got no answer no file is asked
// about more; each is left as the ledger holds it, and the stage ends
// resumable (exit 1) naming Infinia as not answering. Before, the
// engine's questions alone were counted, and every open file's status was
// asked through the client's retries, one after another. The uploads
// count with them (sends of the engine): one whose every connection to
// the SFTP server got no answer (none made or none that answered the
// handshake in time, or each lost before the upload's answer: stalled,
// or a keepalive unanswered) is pipeline.ErrNoAnswer (load.SFTPSession),
// and when such uploads, or the SFTP server's checks of a file, are what
// stopped the stage it names Infinia's SFTP server as not answering (as
// it does when the stage's first connection, before any upload, got no
// answer: nothing is uploaded or asked then). An
// upload the server refused (permission, a full disk, a file it cannot
// put in place) is an answer. Before, no SFTP error was counted, and a
// hung SFTP server had every file tried through its connections, a few
// at a time, until the wait was over.
//
// An Infinia that refuses our credentials for a status question (our key
// pair changed at Infinia, say) stops the stage with a configuration
// error (exit 2) in one line naming the flags to check (ourKeyRefused:
// the client's text named neither). The files go by SFTP, under another
// key: those uploaded are asked about again by the re-run, never
// uploaded again blindly. What the stage had found for a person before
// the refusal (files not built, held, refused by Infinia, or whose
// answers could not be used) and the uploads the stop left sent and not
// final go with its error (pipeline.WithProblems), said by the runner in
// the stage's NEEDS A PERSON line with the stage's summary so far (the
// files not final counted), as the distribute stage says its own. So do
// the stage's other configuration errors (exit 2): Infinia's SFTP server
// refusing our SSH key, or presenting a host key known_hosts does not
// hold, at the stage's first connection or at a reconnect mid-way
// (before, they returned their error alone, and the night's log said
// nothing of what the stage, or an earlier run of the date, had held).
func UploadStage(c StageConfig) pipeline.StageFunc {
	stage := uploadStage(c)
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		summary, err := stage(ctx, run)
		if refusedOurKey(err) {
			return summary, ourKeyRefused(err, "when asked about the trade files", "a file uploaded is asked about again, never uploaded again blindly")
		}
		return summary, err
	}
}

func uploadStage(c StageConfig) pipeline.StageFunc {
	c.defaults()
	return func(ctx context.Context, run *pipeline.Run) (string, error) {
		ctx = pipeline.WithBreaker(ctx) // the questions to Infinia: the engine's and awaitUploads'
		began := time.Now()
		sellers, err := c.Store.AccountsAt(ctx, run.ID, SellerAccount)
		if err != nil {
			return "", err
		}
		unbuilt := &pipeline.Problems{}
		if err := buildTradeFiles(ctx, &c, run, sellers, unbuilt); err != nil {
			return "", fmt.Errorf("build trade files: %w", err)
		}
		all, accepted, refused, err := c.Store.TradeFileCounts(ctx, run.ID)
		if err != nil {
			return "", err
		}
		open := all - accepted - refused
		up := &uploads{c: &c, run: run, sellers: sellers, since: began, files: map[string]*uploading{}}
		unusable := &unusableAnswers{lostDate: run.Key.Date.String()}
		var uploaded, pastHeld atomic.Int64
		// A file the ledger holds built and never uploaded is not uploaded
		// when its date is past Infinia's memory (a backup taken between
		// its build and its upload: a run the ledger does not hold may
		// have uploaded it, and an Infinia that forgot it counts its
		// orders twice). One uploaded before is asked about as ever.
		past := c.pastMemory(run, "trade file uploads")
		sender := pipeline.HoldFirstSends(up, past)
		progress := pipeline.ProgressFrom(ctx)
		progress.Restart(int64(open))
		// The uploads: the engine over the SFTP session, c.Parallel files
		// at a time; an upload whose end is unknown is asked about (status,
		// then the file under its final name) in waves.
		en := &pipeline.Engine{Store: c.Store, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: c.Parallel}), Poll: c.Poll, Wait: c.Wait,
			Sender: func(pipeline.Effect) pipeline.EffectSender { return sender },
			Final: func(_ context.Context, e pipeline.Effect) error {
				progress.Add(1)
				if u, ok := up.done(e.Key); ok && e.Sends > u.sends {
					uploaded.Add(1)
				}
				return nil
			},
			Error: func(ctx context.Context, e pipeline.Effect, err error) error {
				// The file is let go of (up.done) only when the upload
				// leaves the engine here (handled: nil). An error returned
				// either stops the stage or, for a question that got no
				// answer, leaves the upload pending, asked again by the
				// engine: its file is still needed (Query), and it is among
				// the files left out of the status questions (res.Pending).
				// Before, it was let go of on every error: each later
				// question of the run failed ("no trade file for upload"),
				// the status questions found the file accepted, and its
				// upload stayed unknown for ever, as only open files are
				// fed (chaos trial, seed 20261207, night 17).
				u, ok := up.held(e.Key)
				if !ok {
					return fmt.Errorf("upload %s: %w", e.Key, err)
				}
				f := u.file
				if past != nil && e.Sends == 0 && errors.Is(err, pipeline.ErrPastMemory) {
					// Never uploaded, its date past Infinia's memory
					// (HoldFirstSends): left planned, not asked about (it
					// is not at Infinia), for a person.
					// Its orders are held so (pastHold), not in progress.
					up.done(e.Key)
					progress.Add(1)
					pastHeld.Add(1)
					unusable.skip(f.Name)
					return c.Store.SetFileItemsReason(ctx, f, "", pastHold)
				}
				if errors.Is(err, ErrAnswer) || pipeline.SubjectOnly(err) {
					// Infinia answered about this file what cannot be used,
					// or refused to answer about it (it may have the file):
					// its upload stays unknown, asked again by the next run
					// (never sent again blindly), for a person; the others go on.
					up.done(e.Key)
					progress.Add(1)
					unusable.add(f.Name, err)
					return holdLost(ctx, &c, f, err)
				}
				return fmt.Errorf("upload %s: %w", f.Name, err)
			},
		}
		// stopped is the stage's end once a configuration error (err,
		// exit 2) stops it - Infinia refused our credentials, or its
		// SFTP server our key, or presented another host key, at the
		// first connection or a reconnect: what the stage had found for
		// a person before it - files
		// not built, held past Infinia's memory, whose answers could not
		// be used, refused by Infinia (as the ledger holds them) - and the
		// uploads the stop left sent and not final (res) go with err
		// (pipeline.WithProblems), said by the runner in the stage's
		// NEEDS A PERSON line with the stage's summary so far, as the
		// distribute stage says its own. Dropped, only the re-run told
		// them (found by a review).
		//
		// leadPast leads the stage's problems with the files held past
		// Infinia's memory, once (said once, at the run's end), whichever
		// path ends the stage.
		ledPast := false
		leadPast := func() {
			if n := int(pastHeld.Load()); n > 0 && !ledPast {
				ledPast = true
				unbuilt.Lead(fmt.Sprintf("%d trade files built and never uploaded, not uploaded, their orders wait unpaid: %v", n, past), n)
				unbuilt.Explain(past)
			}
		}
		stopped := func(res pipeline.EngineResult, err error) (string, error) {
			problems := unbuilt
			leadPast()
			accepted, refused, lerr := refusedFiles(ctx, &c, run, problems)
			if lerr != nil {
				return "", errors.Join(err, lerr)
			}
			unusable.addTo(problems)
			if line, n := res.LeftAtStop("trade file uploads", "Infinia"); n > 0 {
				problems.AddMany(line, n)
			}
			all, _, _, lerr := c.Store.TradeFileCounts(ctx, run.ID)
			if lerr != nil {
				return "", errors.Join(err, lerr)
			}
			// The files not final (uploaded and not decided by Infinia,
			// or not uploaded) stay open: the re-run asks Infinia about
			// each uploaded one, and uploads none again blindly.
			why := "Infinia refused our key"
			if !refusedOurKey(err) {
				why = "a configuration error" // the SFTP server's host key, or our SFTP key: the error says which
			}
			summary := fmt.Sprintf("%d trade files (%d uploaded now), %d accepted, %d refused by Infinia, %d not final, stopped: %s",
				open, uploaded.Load(), accepted, refused, all-accepted-refused, why)
			return summary, pipeline.WithProblems(err, problems.NeedsPerson())
		}
		if open > 0 {
			if err := c.SFTP.Connect(ctx); err != nil {
				if errors.Is(err, pipeline.ErrNoAnswer) && ctx.Err() == nil {
					// Said as a stage stopped mid-way by its breaker says
					// it (the runbook's "A provider not answering"), on
					// one line: the session's error joins each connection's.
					err = pipeline.NoAnswer(fmt.Errorf("%s is not answering: no connection to it got an answer (%s), so nothing was uploaded or asked",
						sftpServer, pipeline.OneLine(err.Error())))
				}
				err = fmt.Errorf("%d trade files to upload: %w", open, err)
				if pipeline.KindOf(err) == pipeline.KindUsage {
					// Its host key not the one we trust, or our key
					// refused: what earlier runs of the date left for a
					// person is still said.
					return stopped(pipeline.EngineResult{}, err)
				}
				return "", err
			}
		}
		res, err := en.RunFeed(ctx, up.feed)
		if pipeline.KindOf(err) == pipeline.KindUsage {
			// Infinia refused our credentials for a question about an
			// upload, or the SFTP server, reconnected to, refused our key
			// or presented another host key.
			return stopped(res, err)
		}
		if err != nil {
			return "", err
		}
		// Uploads not done when the wait was over (a file the SFTP server
		// keeps refusing, say) are left to the next run; the other files'
		// statuses are asked all the same, so that one file holds back no
		// other seller (before, the stage stopped here, and every seller
		// of the date went unpaid on every run while one upload failed:
		// found by a review). Those files are not asked about: they are
		// not uploaded.
		who := sftpServer
		if res.NotAnswering != "" && !errors.As(pipeline.NotAnsweringCause(ctx), new(fileServer)) {
			who = "Infinia" // its status questions stopped answering, not its SFTP server
		}
		stuck := res.StillProcessing("trade file uploads", who, c.Wait)
		for _, e := range res.Pending {
			if u, ok := up.done(e.Key); ok {
				unusable.skip(u.file.Name)
			}
		}
		problems := unbuilt
		leadPast()
		if res.NotAnswering == "" {
			accepted, refused, err = awaitUploads(ctx, &c, run, unusable, problems)
		}
		if pipeline.KindOf(err) == pipeline.KindUsage {
			// Asked about when Infinia refused: the uploads are all
			// ended (the engine is done), the files uploaded and not
			// decided are counted in the summary as not final.
			return stopped(pipeline.EngineResult{}, err)
		}
		if err != nil && !errors.Is(err, pipeline.ErrStillProcessing) {
			// Infinia stopped answering while its files were asked
			// about: each is left as the ledger holds it.
			stopped := pipeline.StoppedNotAnswering(ctx, "Infinia", err)
			if stopped == nil {
				return "", err
			}
			err = stopped
		}
		if pipeline.NotAnswering(ctx, "Infinia") != nil {
			// The files were not all asked about (awaitUploads stopped,
			// or was not begun): what the ledger holds is still said,
			// the files Infinia refused for a person among it. They were
			// left out, and the summary counted none.
			var lerr error
			if accepted, refused, lerr = refusedFiles(ctx, &c, run, problems); lerr != nil {
				return "", lerr
			}
		}
		unusable.addTo(problems)
		summary := fmt.Sprintf("%d trade files (%d uploaded now), %d accepted, %d refused by Infinia", open, uploaded.Load(), accepted, refused)
		if stuck != nil || err != nil {
			// Resumable (exit 1) before what needs a person: of kind
			// failed, as the other stages say it (joined as they were,
			// the problems' kind was the error's, exit 4 to Combine and
			// Beside).
			if np := problems.NeedsPerson(); np != nil {
				return summary, pipeline.E(pipeline.KindFailed, "", errors.Join(stuck, err, np))
			}
			return summary, errors.Join(stuck, err)
		}
		return summary, problems.NeedsPerson()
	}
}

// uploadPage is how many trade files the upload stage reads, checks and
// plans at a time, and asks about at a time in each wave of status
// questions.
const uploadPage = 1000

// buildTradeFiles writes a new file for every seller and currency with
// items in no file yet (the next attempt after the run's earlier files of
// the seller and currency) and records it with its items, as the ledger's
// sums stream in, buildParallel files at a time (each is a read of its
// items, a file written and a commit: the commits overlap). A file whose
// requestNo is another file's already (pipeline.ErrKeyTaken: two sellers'
// keys collide) is recorded under its requestNo "taken" (takenSalt); one
// whose both are is not recorded: its items wait in no file, unpaid, one
// of unbuilt's problems (for a person), and the other files go on. A date
// past Infinia's memory (StageConfig.Memory) builds none: its items wait
// in no file, held (pastHold, their state left as it is), counted under
// one of unbuilt's problems.
func buildTradeFiles(ctx context.Context, c *StageConfig, run *pipeline.Run, sellers map[string]string, unbuilt *pipeline.Problems) error {
	progress := pipeline.ProgressFrom(ctx) // a phase of its own: after a verification's
	progress.Restart(0)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(buildParallel)
	var mu sync.Mutex
	past, held := c.pastMemory(run, "trade files"), 0
	if err := c.releasePast(ctx, run, pipeline.ItemRecorded, past); err != nil {
		return err
	}
	err := c.Store.EachUnfiled(gctx, run.ID, c.Channels, func(p pipeline.Payable, last, groups int) error {
		progress.SetTotal(int64(groups))
		if past != nil {
			// A new requestNo of a date past Infinia's memory: no file is
			// built, its orders wait in none, for a person (an Infinia
			// that forgot the file would count its orders twice in the
			// sellers' available shares), held so (pastHold), not in
			// progress.
			held++
			progress.Add(1)
			_, err := c.Store.HoldWaiting(gctx, run.ID, p.SellerID, p.Currency, c.Channels, pipeline.ItemRecorded, pastHold)
			return err
		}
		g.Go(func() error {
			defer progress.Add(1)
			err := buildTradeFile(gctx, c, run, sellers[p.SellerID], p, last+1)
			if errors.Is(err, pipeline.ErrKeyTaken) {
				mu.Lock()
				defer mu.Unlock()
				unbuilt.Add(fmt.Sprintf("seller %s %s: trade file not uploaded, its orders wait unpaid: %v", p.SellerID, p.Currency, err))
				return nil
			}
			return err
		})
		return gctx.Err() // a file failed: read no further
	})
	if werr := g.Wait(); werr != nil {
		return werr
	}
	if held > 0 {
		unbuilt.Lead(fmt.Sprintf("%d trade files (a seller and currency each) not built, their orders wait unpaid: %v", held, past), held)
		unbuilt.Explain(past) // said once, at the run's end
	}
	return err
}

// buildParallel is how many trade files are built at a time.
const buildParallel = 8

// buildTradeFile writes and records the trade file attempt of the items
// of p in no file yet; account is the seller's Infinia seller id.
func buildTradeFile(ctx context.Context, c *StageConfig, run *pipeline.Run, account string, p pipeline.Payable, attempt int) error {
	if account == "" {
		return fmt.Errorf("seller %s has no Infinia seller id recorded with run %d: cannot name its trade file", p.SellerID, run.ID)
	}
	f := pipeline.TradeFile{RunID: run.ID, Date: run.Key.Date, SellerID: p.SellerID, ProviderSellerID: account, Currency: p.Currency,
		Attempt: attempt, SellerMinor: p.Amount, Items: int(p.Items)}
	var err error
	for _, no := range []string{TradeRequestNo(f.Date, f.SellerID, f.Currency, f.Attempt), TradeRequestNoTaken(f.Date, f.SellerID, f.Currency, f.Attempt)} {
		f.RequestNo = no
		if f.Name, err = c.FileName(c.PlatformID, account, f.Currency, f.Date, f.RequestNo); err != nil {
			return pipeline.E(pipeline.KindUsage, "seller "+p.SellerID, err)
		}
		if err := writeTradeFile(ctx, c, run, &f, ""); err != nil {
			return err
		}
		if _, err = c.Store.RecordTradeFile(ctx, f, c.Channels); !errors.Is(err, pipeline.ErrKeyTaken) {
			return err
		}
		// Another seller's file holds the requestNo (takenSalt): this
		// one, recorded nowhere, goes; the file is built again under
		// the requestNo "taken".
		_ = os.Remove(c.tradeFilePath(run.Key.Date, f.Name))
	}
	return err
}

// uploads feeds the engine the run's open trade files a page at a time
// and sends and asks about each (EffectSender for KindUpload); it holds
// the files the engine holds, by upload key, until each is done.
type uploads struct {
	c       *StageConfig
	run     *pipeline.Run
	sellers map[string]string
	since   time.Time // when the stage began: files written since are its own
	after   int64     // the feed's cursor: the last trade file id read

	mu    sync.Mutex
	files map[string]*uploading
}

// uploading is a trade file in the engine, and its upload's sends when
// it was planned (more at its end: uploaded now).
type uploading struct {
	file  pipeline.TradeFile
	sends int
}

// feed is the engine's Feed: the next page of the run's open trade
// files, each as recorded on disk (ensureTradeFile), and its upload
// planned.
func (u *uploads) feed(ctx context.Context) ([]pipeline.Effect, error) {
	files, err := u.c.Store.OpenTradeFiles(ctx, u.run.ID, u.after, uploadPage)
	if err != nil || len(files) == 0 {
		return nil, err
	}
	u.after = files[len(files)-1].ID
	// Each file checked and its upload planned buildParallel at a time
	// (a commit each), the effects in the files' order.
	effects := make([]pipeline.Effect, len(files))
	at := make([]int, len(files))
	for i := range at {
		at[i] = i
	}
	err = pipeline.ForEach(ctx, buildParallel, at, func(i int) error {
		f := files[i]
		f.ProviderSellerID = u.sellers[f.SellerID]
		if err := ensureTradeFile(ctx, u.c, u.run, &f, u.since); err != nil {
			return err
		}
		e, err := u.c.Store.PlanEffect(ctx, pipeline.Effect{RunID: u.run.ID, Kind: KindUpload, Subject: UploadSubject(u.run.Key.Date, f.SellerID, f.Currency, f.Attempt),
			Attempt: 1, Key: f.RequestNo, Currency: f.Currency, Amount: f.SellerMinor})
		if err != nil {
			return err
		}
		u.mu.Lock()
		defer u.mu.Unlock()
		u.files[e.Key] = &uploading{file: f, sends: e.Sends}
		effects[i] = e
		return nil
	})
	if err != nil {
		return nil, err
	}
	return effects, nil
}

// held returns the file of an upload the engine holds, keeping it.
func (u *uploads) held(key string) (uploading, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f, ok := u.files[key]
	if !ok {
		return uploading{}, false
	}
	return *f, true
}

// done lets go of the file of an upload that left the engine.
func (u *uploads) done(key string) (uploading, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f, ok := u.files[key]
	if !ok {
		return uploading{}, false
	}
	delete(u.files, key)
	return *f, true
}

// ensureTradeFile makes sure the work directory holds f as recorded. A
// file this stage built (written at or after since) is taken as it is
// when it has the recorded digest and size: it was just written from the
// ledger and recorded with that digest. Any other - missing, changed, or
// left by an earlier run - is rebuilt from the ledger, which must give
// the recorded digest: the bytes are a function of the ledger, so a
// resumed run (on another machine too) uploads exactly what it recorded,
// and a ledger that moved under a recorded file is refused.
func ensureTradeFile(ctx context.Context, c *StageConfig, run *pipeline.Run, f *pipeline.TradeFile, since time.Time) error {
	path := c.tradeFilePath(run.Key.Date, f.Name)
	if fi, err := os.Stat(path); err == nil && !fi.ModTime().Before(since) {
		if sum, size, err := fileDigest(path); err == nil && sum == f.SHA256 && size == f.Bytes {
			return nil
		}
	}
	want := f.SHA256
	if err := writeTradeFile(ctx, c, run, f, f.RequestNo); err != nil {
		return err
	}
	if f.SHA256 != want {
		return fmt.Errorf("trade file %s was recorded with sha256 %s, rebuilt as %s: refusing to change an uploaded file", f.Name, want, f.SHA256)
	}
	return nil
}

// fileDigest returns the hex SHA-256 and size of the file at path.
func fileDigest(path string) (string, int64, error) {
	fh, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer fh.Close()
	h := sha256.New()
	n, err := io.Copy(h, fh)
	if err != nil {
		return "", 0, err
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// tradeFilePath is where trade file name of date d is built: the date's
// directory of the work directory.
func (c *StageConfig) tradeFilePath(d pipeline.Date, name string) string {
	return filepath.Join(c.WorkDir, d.String(), name)
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

// file returns the trade file of upload e, and its path.
func (u *uploads) file(e pipeline.Effect) (pipeline.TradeFile, string, error) {
	u.mu.Lock()
	f, ok := u.files[e.Key]
	u.mu.Unlock()
	if !ok {
		return pipeline.TradeFile{}, "", fmt.Errorf("no trade file for upload %s", e.Key)
	}
	return f.file, u.c.tradeFilePath(f.file.Date, f.file.Name), nil
}

// Prepare makes sure, before e's upload is recorded sent, that its file
// is still in the work directory as planned (pipeline.EffectPreparer): one
// gone since (its directory emptied or removed) or of another size (cut
// short) is rebuilt from the ledger to the recorded digest
// (ensureTradeFile). Before, it was sent as it was, SFTP.Upload refused
// it (not the recorded size), and the upload was recorded sent, its
// outcome unknown, and sent again the same way until the run's wait was
// over. A file rebuilt to another digest is refused here, nothing sent; a
// file of the recorded size but other bytes is still refused by the
// upload's own check, never uploaded.
func (u *uploads) Prepare(ctx context.Context, e pipeline.Effect) (pipeline.EffectSender, error) {
	f, path, err := u.file(e)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Size() == f.Bytes {
		return u, nil
	}
	if err := ensureTradeFile(ctx, u.c, u.run, &f, time.Time{}); err != nil {
		return nil, err
	}
	return u, nil
}

var _ pipeline.EffectPreparer = (*uploads)(nil)

// Send uploads e's file (EffectSender).
func (u *uploads) Send(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	f, path, err := u.file(e)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	err = u.c.SFTP.Upload(ctx, f.Name, f.Bytes, f.SHA256, func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return pipeline.Outcome{}, fileServer{err}
	}
	return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
}

// Query asks Infinia about e's file, then looks for it under its final
// name (EffectSender): also when Infinia answers what cannot be used or
// refuses to answer about it, so that a file that landed is uploaded. An
// upload whose delivery is unknown (its rename into place asked for on a
// connection since lost) is then ended by the SFTP session when its
// temporary file is still there (FileUploader.FinishUpload), whatever
// Infinia answered; it is never sent again.
func (u *uploads) Query(ctx context.Context, e pipeline.Effect) (pipeline.Outcome, error) {
	f, _, err := u.file(e)
	if err != nil {
		return pipeline.Outcome{}, err
	}
	_, _, qerr := u.c.API.UploadStatus(ctx, f)
	if qerr == nil {
		return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
	}
	if !errors.Is(qerr, pipeline.ErrNotFound) && !errors.Is(qerr, ErrAnswer) && !pipeline.SubjectOnly(qerr) {
		return pipeline.Outcome{}, qerr
	}
	size, ok, err := u.c.SFTP.Stat(ctx, f.Name)
	if err != nil {
		return pipeline.Outcome{}, fileServer{err}
	}
	if ok && size == f.Bytes {
		return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
	}
	said := !errors.Is(qerr, pipeline.ErrNotFound) // Infinia said something of it: not "never arrived"
	if pipeline.IsDeliveryUnknown(e.LastError) {
		// The rename into place never happened when the file it was to move
		// is still there: it is ended now, and the file has landed. So
		// also when Infinia refuses to say, or says what cannot be used
		// (its answer to a requestNo it never received may be a refusal:
		// "not found" has no published code): ending this upload's own
		// rename sends nothing again. Before, that answer was returned
		// first, and the upload was held for a person on every run though
		// its temporary file proved the rename never happened (found by a
		// review).
		landed, err := u.c.SFTP.FinishUpload(ctx, f.Name, f.Bytes, e.LastError)
		if err != nil {
			err = fileServer{err}
		}
		if err != nil && said {
			return pipeline.Outcome{}, errors.Join(qerr, fmt.Errorf("end its rename into place: %w", err)) // still Infinia's answer first
		}
		if err != nil {
			return pipeline.Outcome{}, err
		}
		if landed {
			return pipeline.Outcome{Status: pipeline.OutcomeSucceeded, Ref: f.Name}, nil
		}
	}
	if said {
		return pipeline.Outcome{}, qerr
	}
	if pipeline.IsDeliveryUnknown(e.LastError) {
		// Renamed into place on a connection since lost, perhaps, and taken
		// by Infinia before it knows the file: asked again (the run ends
		// still processing), never uploaded a second time. The mark is
		// kept as the answer's reason (a pending answer's reason is what
		// the effect's last error becomes: an empty one wiped the mark and
		// the next query sent the file again; found by a review), with when
		// the delivery was first found unknown; past LostAfter, Infinia not
		// knowing the file is for a person, as for a file lost after its
		// upload.
		since, ok := deliveryUnknownSince(e.LastError)
		if !ok {
			since = u.c.Now().UTC()
			return pipeline.Outcome{Status: pipeline.OutcomePending, Reason: e.LastError + deliverySinceMark + since.Format(time.RFC3339) + ")"}, nil
		}
		if u.c.Now().Sub(since) > u.c.LostAfter {
			return pipeline.Outcome{}, &Error{API: APIUploadStatus, RequestNo: f.RequestNo, kind: failBadAnswer,
				Err: &lostByInfinia{fmt.Sprintf("Infinia does not know trade file %s (requestNo %s), whose delivery has been unknown since %s (its rename into place was asked for on a connection since lost, and the file is gone from the server): ask Infinia whether it received it",
					f.Name, f.RequestNo, since.Format(time.RFC3339))}}
		}
		return pipeline.Outcome{Status: pipeline.OutcomePending, Reason: e.LastError}, nil
	}
	return pipeline.Outcome{Status: pipeline.OutcomeNotFound}, nil
}

// sftpServer is how the stage's errors name Infinia's SFTP server.
const sftpServer = "Infinia's SFTP server"

// fileServer marks an error of Infinia's SFTP server (StageConfig.SFTP),
// its text unchanged: once Infinia is taken as not answering, the upload
// stage tells by it (pipeline.NotAnsweringCause) whether its SFTP server
// or its API stopped answering.
type fileServer struct{ error }

func (e fileServer) Unwrap() error { return e.error }

// deliverySinceMark begins, in an upload's last error, when its delivery
// was first found unknown.
const deliverySinceMark = " (delivery unknown since "

// deliveryUnknownSince reads the time deliverySinceMark gives in an
// upload's last error.
func deliveryUnknownSince(lastError string) (time.Time, bool) {
	return markedTime(lastError, deliverySinceMark)
}

// markedTime reads the time (RFC 3339) that follows mark in a last error,
// up to the closing parenthesis.
func markedTime(lastError, mark string) (time.Time, bool) {
	_, rest, ok := strings.Cut(lastError, mark)
	if !ok {
		return time.Time{}, false
	}
	stamp, _, _ := strings.Cut(rest, ")")
	t, err := time.Parse(time.RFC3339, stamp)
	return t, err == nil
}

// awaitUploads asks Infinia about every uploaded file that is not final,
// in waves paced under Infinia's limits (c.Pacer), the first at once (a
// re-run's files may be decided), and applies the answers to the items.
// A wave walks the run's open files in keyset pages (uploadPage), so the
// stage holds a page of them however many the day has. The wait is the
// Engine's: it begins when the first wave is done (every file asked once,
// however long that took at Infinia's limits; a wave of tens of thousands
// of files takes minutes at the limit), and a wave starts c.Poll after
// the last one started, and only if that falls within c.Wait: each file
// still processing is asked again about c.Poll after its last question
// (or a wave's time after, if a wave takes longer), a bounded number of
// times.
//
// Each refused file is a problem for a person: problems counts them all
// and names the first few (by id), which is all a message shows.
//
// The wait is a phase of the stage's progress of its own: its units are
// the files asked about in the first wave, each counted done once Infinia
// decides it (or its answer cannot be used), so that the progress lines
// of a long wait show the files still processing going down rather than
// the uploads' count standing still.
func awaitUploads(ctx context.Context, c *StageConfig, run *pipeline.Run, unusable *unusableAnswers, problems *pipeline.Problems) (accepted, refused int, err error) {
	var deadline time.Time
	progress := pipeline.ProgressFrom(ctx)
	progress.Restart(0)
	var asked int64 // files asked about in the first wave: the phase's total
	// released are the files Infinia knows (still processing) whose lost
	// hold this run has cleared: once a file, not on every poll.
	released := map[string]bool{}
	for {
		start := time.Now()
		var (
			mu      sync.Mutex
			pending int
			first   string // the first file still processing
			after   int64
		)
		for {
			open, err := c.Store.OpenTradeFiles(ctx, run.ID, after, uploadPage)
			if err != nil {
				return 0, 0, err
			}
			if len(open) == 0 {
				break
			}
			after = open[len(open)-1].ID
			err = c.Pacer.Each(ctx, len(open), nil, func(ctx context.Context, i int) error {
				if unusable.has(open[i].Name) {
					return nil // asked again by the next run
				}
				if deadline.IsZero() {
					mu.Lock()
					asked++
					progress.SetTotal(asked)
					mu.Unlock()
				}
				f, known, err := checkUpload(ctx, c, run, open[i])
				var notNow *errorFileNotNow
				if errors.As(err, &notNow) {
					mu.Lock()
					defer mu.Unlock()
					if pending++; first == "" || f.Name < first {
						first = f.Name + " (" + err.Error() + ")"
					}
					return nil
				}
				if errors.Is(err, ErrAnswer) || pipeline.SubjectOnly(err) {
					// An answer about this file that cannot be used, or
					// none (the query refused): the file stays open, for a
					// person and the next run; the other files go on.
					unusable.add(f.Name, err)
					progress.Add(1)
					return holdLost(ctx, c, f, err)
				}
				if err != nil {
					return err
				}
				if f.Status == StatusSuccess || f.Status == StatusFailed {
					progress.Add(1)
					return nil
				}
				// Infinia knows it now: if an earlier run held its orders
				// as lost (only a file past LostAfter can have been), that
				// no longer says why they are not paid; they are in
				// progress, as the run says of the file. Asked once a run,
				// outside the lock.
				if known && c.Now().Sub(f.Uploaded) > c.LostAfter && firstRelease(&mu, released, f.Name) {
					if err := c.Store.SetFileItemsReason(ctx, f, lostHold(f.Name), ""); err != nil {
						return err
					}
				}
				mu.Lock()
				defer mu.Unlock()
				if pending++; first == "" || f.Name < first {
					first = f.Name
				}
				return nil
			})
			if err != nil {
				return 0, 0, err
			}
		}
		if pending == 0 {
			break
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(c.Wait) // every file asked once: the wait begins
		}
		next := start.Add(c.Poll)
		if next.After(deadline) {
			return 0, 0, fmt.Errorf("%w: %d trade files still processing at Infinia after %s (first: %s); re-run to resolve",
				pipeline.ErrStillProcessing, pending, c.Wait, first)
		}
		if d := time.Until(next); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return 0, 0, ctx.Err()
			case <-t.C:
			}
		}
	}
	return refusedFiles(ctx, c, run, problems)
}

// refusedFiles counts the run's trade files Infinia accepted and refused
// as the ledger holds them, and adds those it refused to problems (their
// orders are held, for a person): the first pipeline.ProblemsListed
// named, the rest counted.
func refusedFiles(ctx context.Context, c *StageConfig, run *pipeline.Run, problems *pipeline.Problems) (accepted, refused int, err error) {
	_, accepted, refused, err = c.Store.TradeFileCounts(ctx, run.ID)
	if err != nil {
		return 0, 0, err
	}
	if refused > 0 {
		files, err := c.Store.RefusedTradeFiles(ctx, run.ID, pipeline.ProblemsListed)
		if err != nil {
			return 0, 0, err
		}
		for i, f := range files {
			line := fmt.Sprintf("trade file %s refused by Infinia: %s", f.Name, f.Reason)
			if i == 0 {
				// What a person does, said once.
				line += fmt.Sprintf(" (its orders are held; once the cause is fixed and Infinia confirms it took none of a file, settle resolve --date %s --trade-file NAME [--refused-rows] --note \"who confirmed it, what was fixed\" sends them again)", run.Key.Date)
			}
			problems.Add(line)
		}
		problems.Total += refused - len(files) // counted, not listed (problems held nothing before these files)
	}
	return accepted, refused, nil
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

// errorFileOnly reports whether err, reading the error file of a refused
// trade file, concerns that file alone and will not pass by itself: a
// refusal about it, or a failure that is not transient (an error file in
// another layout or not CSV, a link missing or not http(s), an HTTP
// status such as an expired link's 403). Configuration errors and a
// stopped run are not.
func errorFileOnly(err error) bool {
	if pipeline.KindOf(err) == pipeline.KindUsage || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var e *Error
	return pipeline.SubjectOnly(err) || errors.As(err, &e) && !e.Transient()
}

// checkUpload asks Infinia about one file and records a final answer (a
// SUCCESS that comes with an error file: the rows it names refused, the
// others uploaded; held for a person when the error file refuses the file
// as a whole or cannot be read). An answer it cannot use (ErrAnswer: a status this client does not know,
// say), or a refusal to answer about this file alone
// (pipeline.SubjectOnly), is returned as the error, with nothing
// recorded.
func checkUpload(ctx context.Context, c *StageConfig, run *pipeline.Run, f pipeline.TradeFile) (_ pipeline.TradeFile, known bool, err error) {
	status, url, err := c.API.UploadStatus(ctx, f)
	if errors.Is(err, pipeline.ErrNotFound) {
		if !f.Uploaded.IsZero() && c.Now().Sub(f.Uploaded) > c.LostAfter {
			// Not late any more: lost. Held for a person (the file stays
			// open and is asked again by every run), not waited on by
			// every run as still processing, and not uploaded again: only
			// Infinia can say whether it has the first copy.
			return f, false, &lostByInfinia{fmt.Sprintf("Infinia does not know trade file %s (requestNo %s), uploaded %s ago at %s: ask Infinia whether it received it",
				f.Name, f.RequestNo, roundAge(c.Now().Sub(f.Uploaded)), f.Uploaded.UTC().Format(time.RFC3339))}
		}
		return f, false, nil // landed, not yet picked up
	}
	if errors.Is(err, ErrAnswer) {
		return f, false, err
	}
	if pipeline.SubjectOnly(err) {
		// A refusal to say, not of the file: Infinia may have accepted
		// it. It stays open, for a person and the next run, as an
		// answer that cannot be used does.
		return f, false, fmt.Errorf("status query refused by Infinia: %w", err)
	}
	if err != nil {
		return f, false, fmt.Errorf("upload status of %s: %w", f.Name, err)
	}
	final := f
	final.Status, final.ErrorURL = status, url
	switch status {
	case StatusSuccess:
		var rows []pipeline.ProviderReject
		if url != "" {
			// Published, the error file comes with a FAILED file; what a
			// SUCCESS with one means is not (README, "Infinia Pay: what
			// we assumed"). Its rows naming orders are refused, the others
			// taken; one refusing the file as a whole, or an error file
			// that cannot be read, holds the file for a person. It was
			// ignored: the rows it refused were paid.
			rows, err = c.API.ErrorRows(ctx, url)
			switch {
			case err == nil:
			case errorFileOnly(err):
				final.Status, final.Reason = StatusFailed, fmt.Sprintf("SUCCESS with an error file that could not be read: %v", err)
				return final, false, holdFile(ctx, c, final, "trade file "+f.Name+" was accepted by Infinia with an error file that could not be read (ask Infinia what it took of it): "+err.Error())
			case pipeline.KindOf(err) == pipeline.KindUsage || ctx.Err() != nil:
				return f, false, fmt.Errorf("error file of %s: %w", f.Name, err)
			default:
				return f, false, &errorFileNotNow{err} // asked again, as for a refused file
			}
			if whole := slices.IndexFunc(rows, func(r pipeline.ProviderReject) bool { return r.OrderNo == "" }); whole >= 0 {
				final.Status, final.Reason = StatusFailed, "SUCCESS with an error file that "+refusedReason(rows)
				return final, false, holdFile(ctx, c, final, "trade file "+f.Name+" was accepted by Infinia with an error file that "+refusedReason(rows)+" (ask Infinia what it took of it)")
			}
			// Rows naming orders the file does not hold (another file's
			// error file, a stale link) say nothing of which of its rows
			// Infinia refused: held for a person, as a whole. They
			// matched none of its items, and every one was paid.
			strangers, err := notInFile(ctx, c, run, f, rows)
			if err != nil {
				return f, false, err
			}
			if len(strangers) > 0 {
				why := fmt.Sprintf("names %d orders not in the file (first %s)", len(strangers), strangers[0])
				final.Status, final.Reason = StatusFailed, "SUCCESS with an error file that "+why
				return final, false, holdFile(ctx, c, final, "trade file "+f.Name+" was accepted by Infinia with an error file that "+why+": which of its rows Infinia refused is not known (ask Infinia what it took of it)")
			}
			if len(rows) > 0 {
				final.Reason = "accepted; " + refusedReason(rows)
			}
		}
		if err := c.Store.FinishTradeFile(ctx, final, rows, "uploaded", ""); err != nil {
			return f, false, err
		}
		// Accepted: nothing uploads it again (a file of the seller's
		// refused rows is a new one, built from the ledger), so its copy
		// in the work directory goes. Kept, a backfill's pod held every
		// date of its range in its emptyDir at once. A refused or held
		// file stays, for a person to read.
		_ = os.Remove(c.tradeFilePath(run.Key.Date, f.Name))
		return final, false, nil
	case StatusFailed:
		rows, err := c.API.ErrorRows(ctx, url)
		switch {
		case err == nil:
		case errorFileOnly(err):
			// Refused, but its error file cannot be read (another layout,
			// not CSV, a link that is missing, malformed or refused):
			// the whole file is held, with what was wrong.
			final.Reason = fmt.Sprintf("refused; its error file could not be read: %v", err)
			return final, false, holdFile(ctx, c, final, "trade file "+f.Name+" was refused by Infinia, and its error file could not be read: "+err.Error())
		case pipeline.KindOf(err) == pipeline.KindUsage || ctx.Err() != nil:
			return f, false, fmt.Errorf("error file of %s: %w", f.Name, err)
		default:
			// Not now (the link's server does not answer): the file
			// stays open, asked again in the next wave and by the next
			// run, as one still processing (exit 1: a retry may read it);
			// the others go on.
			return f, false, &errorFileNotNow{err}
		}
		final.Reason = refusedReason(rows)
		if err := c.Store.FinishTradeFile(ctx, final, rows, "held", "held: trade file "+f.Name+" was refused by Infinia"); err != nil {
			return f, false, err
		}
		return final, false, nil
	default:
		return f, true, nil // still processing: Infinia knows it
	}
}

// notInFile returns the order numbers of rows (an error file's) that name
// no item of trade file f, sorted, each once.
func notInFile(ctx context.Context, c *StageConfig, run *pipeline.Run, f pipeline.TradeFile, rows []pipeline.ProviderReject) ([]string, error) {
	if len(rows) == 0 {
		return nil, nil // an error file without rows: nothing to look for, the file's items not read
	}
	named := map[string]bool{}
	for _, r := range rows {
		named[r.OrderNo] = true
	}
	err := c.Store.ItemsForTrade(ctx, run.ID, f.SellerID, f.Currency, c.Channels, f.RequestNo, func(sp pipeline.Split) error {
		delete(named, sp.OrderNo)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("the items of trade file %s: %w", f.Name, err)
	}
	return slices.Sorted(maps.Keys(named)), nil
}

// roundAge is an age for a message: to the minute from an hour on, to the
// second below (a short --infinia-lost-after said "uploaded 0s ago").
func roundAge(d time.Duration) time.Duration {
	if d >= time.Hour {
		return d.Round(time.Minute)
	}
	return d.Round(time.Second)
}

// refusedReason says what Infinia's error file refused: its rows naming
// orders, counted, the first named; a row naming no order refuses the
// file as a whole (its header, say), said so, not as "first : why".
func refusedReason(rows []pipeline.ProviderReject) string {
	var orders, whole []pipeline.ProviderReject
	for _, r := range rows {
		if r.OrderNo == "" {
			whole = append(whole, r)
		} else {
			orders = append(orders, r)
		}
	}
	var parts []string
	if len(whole) > 0 {
		parts = append(parts, "refused as a whole: "+whole[0].Reason)
	}
	if len(orders) > 0 || len(whole) == 0 {
		what := fmt.Sprintf("%d rows refused", len(orders))
		if len(orders) > 0 {
			what += fmt.Sprintf(", first %s: %s", orders[0].OrderNo, orders[0].Reason)
		}
		parts = append(parts, what)
	}
	return strings.Join(parts, "; ")
}

// errorFileNotNow is the error file of a refused trade file that could not
// be read now (its server did not answer): the file is waited on as one
// still processing, not held for a person (a retry may read it).
type errorFileNotNow struct{ err error }

func (e *errorFileNotNow) Error() string {
	return "refused, and its error file could not be read now: " + e.err.Error()
}
func (e *errorFileNotNow) Unwrap() error { return e.err }

// unusableAnswers are the trade files whose upload or status Infinia
// answered about with what cannot be used (ErrAnswer), or refused to
// answer about (its status query), in this run: they
// are left as they are - open, their upload unknown - asked again by the
// next run, and counted in one problem for a person. Never held as
// refused: Infinia may have accepted them.
type unusableAnswers struct {
	mu      sync.Mutex
	files   map[string]bool
	skipped map[string]bool // not uploaded: not asked, not reported here
	first   struct{ name, why string }
	// lost are the files among them Infinia lost (lostByInfinia): reported on
	// a line of their own, each by name, with what a person does about
	// them (before, they were counted with the unusable answers as a
	// "malformed envelope", the first named alone: an operator with
	// several lost files could not tell which to resolve; found by an
	// operator's walkthrough).
	lost      map[string]bool
	lostFirst string // the first lost file's name, and why
	lostWhy   string
	lostDate  string // the run's date, for the resolve command
}

// holdLost gives the orders of f, when err says Infinia lost it, a hold
// as their reason, so that orders.csv names the file and summary.csv
// counts them held, not in progress (found by an operator's walkthrough);
// any other error leaves them as they are.
func holdLost(ctx context.Context, c *StageConfig, f pipeline.TradeFile, err error) error {
	var lost *lostByInfinia
	if !errors.As(err, &lost) {
		return nil
	}
	return c.Store.SetFileItemsReason(ctx, f, "", lostHold(f.Name)+" (it does not know it): settle resolve --trade-file sends its orders again once Infinia confirms it has none")
}

// lostHold begins the reason of the orders of trade file name, held
// because Infinia lost it (holdLost), until Infinia knows the file.
func lostHold(name string) string {
	return pipeline.HeldPrefix + "trade file " + name + " was lost by Infinia"
}

// firstRelease reports, under mu, whether name is not in released yet,
// and adds it.
func firstRelease(mu *sync.Mutex, released map[string]bool, name string) bool {
	mu.Lock()
	defer mu.Unlock()
	if released[name] {
		return false
	}
	released[name] = true
	return true
}

// lostByInfinia is the error of a trade file Infinia lost: it still does not
// know it --infinia-lost-after after its upload (or after its delivery
// was found unknown). It is an answer that cannot be used (ErrAnswer) for
// the stages - held for a person, asked again by every run, never
// uploaded again - without reading as a malformed one.
type lostByInfinia struct{ msg string }

func (e *lostByInfinia) Error() string { return e.msg }
func (e *lostByInfinia) Unwrap() error { return ErrAnswer }

func (u *unusableAnswers) add(name string, err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.files == nil {
		u.files, u.lost = map[string]bool{}, map[string]bool{}
	}
	var lost *lostByInfinia
	if errors.As(err, &lost) {
		if len(u.lost) == 0 || name < u.lostFirst {
			u.lostFirst, u.lostWhy = name, lost.Error()
		}
		u.lost[name] = true
		u.files[name] = true
		return
	}
	if u.first.name == "" || name < u.first.name {
		u.first.name, u.first.why = name, err.Error()
	}
	u.files[name] = true
}

// skip leaves the file name out of this run's status questions without
// an answer to report: its upload is not done.
func (u *unusableAnswers) skip(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.skipped == nil {
		u.skipped = map[string]bool{}
	}
	u.skipped[name] = true
}

func (u *unusableAnswers) has(name string) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.files[name] || u.skipped[name]
}

// addTo adds the files to problems, a line for the unusable answers and
// one for the lost files, each file counted (before, the lost files of a
// date counted as one subject in the last log line and the metric: found
// by an on-call walk of the runbook).
func (u *unusableAnswers) addTo(problems *pipeline.Problems) {
	for _, l := range u.lines() {
		problems.AddMany(l.text, l.files)
	}
}

// problemLine is a line of the problems, with the files it counts.
type problemLine struct {
	text  string
	files int
}

func (u *unusableAnswers) lines() []problemLine {
	u.mu.Lock()
	defer u.mu.Unlock()
	var lines []problemLine
	if n := len(u.files) - len(u.lost); n > 0 {
		lines = append(lines, problemLine{fmt.Sprintf("%d trade files whose status Infinia did not give in an answer that can be used (first: %s: %s): left open, asked again by the next run of this date",
			n, u.first.name, u.first.why), n})
	}
	if len(u.lost) > 0 {
		names := slices.Sorted(maps.Keys(u.lost))
		const listed = 20
		list := strings.Join(names[:min(len(names), listed)], ", ")
		if len(names) > listed {
			list += fmt.Sprintf(" and %d more (payouts.csv names each upload's file)", len(names)-listed)
		}
		why := u.lostWhy
		if len(names) > 1 {
			why = "first: " + why
		}
		date := cmp.Or(u.lostDate, "D")
		lines = append(lines, problemLine{fmt.Sprintf("%d trade files lost by Infinia (%s): %s: held for a person, asked again by every run of this date, never uploaded again by settle; once Infinia confirms it has none of a file, settle resolve --date %s --trade-file NAME --note \"who confirmed it, the reference\" (with the --infinia-* flags of the run) sends its orders again",
			len(names), why, list, date), len(names)})
	}
	return lines
}
