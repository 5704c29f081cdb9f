package infiniapay_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/settlekit/settle/internal/fault"
	"github.com/settlekit/settle/load"
	"github.com/settlekit/settle/load/infiniapay"
	"github.com/settlekit/settle/load/infiniapay/infiniapaytest"
	"github.com/settlekit/settle/load/sftptest"
	"github.com/settlekit/settle/pipeline"
)

// sessionAttempts is how many connections an SFTPSession call uses at
// most (SFTPSession.Attempts' default).
const sessionAttempts = 3

// holdingProxy stands between the upload stage and the SFTP server.
// While hung it is a server stopped (SIGSTOP) whose kernel still
// accepts: nothing more passes on the connections open, and a new one is
// accepted and never answered (held counts them).
type holdingProxy struct {
	ln     net.Listener
	target string
	hung   atomic.Bool
	held   atomic.Int64
	done   chan struct{}

	mu    sync.Mutex
	conns []net.Conn
}

func newHoldingProxy(t *testing.T, target string) *holdingProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &holdingProxy{ln: ln, target: target, done: make(chan struct{})}
	go p.serve()
	t.Cleanup(func() {
		close(p.done)
		ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			c.Close()
		}
	})
	return p
}

func (p *holdingProxy) keep(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.conns = append(p.conns, c)
}

func (p *holdingProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.keep(c)
		if p.hung.Load() {
			p.held.Add(1) // accepted, never answered
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.keep(s)
		go p.pipe(s, c)
		go p.pipe(c, s)
	}
}

// pipe copies src to dst until either closes; once hung, nothing more
// passes on it, ever (a late byte of a stale connection reaches no one).
func (p *holdingProxy) pipe(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if p.hung.Load() {
				<-p.done
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// sftpInfinia is Infinia (the fake, over HTTP) and its SFTP server (the
// in-process sftptest server, each file renamed into place received by
// the fake, behind a holdingProxy), with a day of n trade files built
// and none uploaded yet; the upload stage over them and an SFTP session,
// inFlight uploads at a time, is stageOf's. session's calls stall after
// 200 ms without an answer, its handshakes after 1 s (answering: a
// session of the usual timeouts, for the runs while the server answers:
// an answer slow on a busy machine is still one).
type sftpInfinia struct {
	*rig
	faults             *fault.Injector // the SFTP server's
	proxy              *holdingProxy
	session, answering *load.SFTPSession
	ledger             *infiniapay.UploadLedger
	stageOf            func(*load.SFTPSession) pipeline.StageFunc
	configOf           func(*load.SFTPSession) infiniapay.StageConfig // stageOf's
	workDir            string                                         // the trade files', a directory per date
	sftpConfig         load.SFTPConfig                                // answering's

	mu      sync.Mutex
	renamed map[string]int // file name -> renames into place
}

func newSFTPInfinia(t *testing.T, n, inFlight int) *sftpInfinia {
	h := &sftpInfinia{rig: newRig(t, infiniapaytest.Options{PlatformID: "P1"}, nil, nil), faults: fault.New(1), renamed: map[string]int{}}
	root := t.TempDir()
	if err := os.Mkdir(filepath.Join(root, "upload"), 0o755); err != nil {
		t.Fatal(err)
	}
	clientKey, err := sftptest.NewKey()
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sftptest.Start(sftptest.Config{Root: root, AuthorizedKeys: []ssh.PublicKey{clientKey.PublicKey()}, Faults: h.faults,
		OnRename: func(p string) {
			f, err := os.Open(filepath.Join(root, p))
			if err != nil {
				t.Error(err)
				return
			}
			defer f.Close()
			if err := h.fake.ReceiveFile(path.Base(p), f); err != nil {
				t.Error(err)
			}
			h.mu.Lock()
			h.renamed[path.Base(p)]++
			h.mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	h.proxy = newHoldingProxy(t, srv.Addr()) // closed first
	knownHosts := filepath.Join(t.TempDir(), "known_hosts")
	if err := os.WriteFile(knownHosts, []byte(knownhosts.Line([]string{h.proxy.ln.Addr().String()}, srv.HostKey())+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := load.SFTPConfig{Addr: h.proxy.ln.Addr().String(), User: "settle", Signer: clientKey, KnownHostsFile: knownHosts}
	h.answering, h.sftpConfig = load.NewSFTPSession(cfg), cfg
	cfg.OpTimeout, cfg.HandshakeTimeout = 200*time.Millisecond, time.Second
	h.session = load.NewSFTPSession(cfg)
	t.Cleanup(func() { h.session.Close(); h.answering.Close() })

	workDir := t.TempDir()
	h.workDir = workDir
	rows := map[string]pipeline.TradeRow{}
	write := func(dir, name string, _ func(func(pipeline.TradeRow) error) error) (string, string, int64, int, error) {
		return h.client.WriteTradeFile(dir, name, func(emit func(pipeline.TradeRow) error) error { return emit(rows[name]) })
	}
	var files []pipeline.TradeFile
	for i := range n {
		seller, account := fmt.Sprintf("S%02d", i), fmt.Sprintf("I%02d", i)
		requestNo := infiniapay.TradeRequestNo(uploadDay, seller, "USD", 1)
		name, err := h.client.TradeFileName(account, "USD", uploadDay, requestNo)
		if err != nil {
			t.Fatal(err)
		}
		rows[name] = pipeline.TradeRow{OrderNo: fmt.Sprintf("O%02d", i), TradeType: "SALE", ProductType: "GOODS", Currency: "USD",
			Amount: "10.00", Commission: "1.00", SellerAmount: "9.00", TradeTime: "2026-12-01T10:00:00Z"}
		_, sum, size, n, err := write(filepath.Join(workDir, uploadDay.String()), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, pipeline.TradeFile{ID: int64(i + 1), RunID: 1, Date: uploadDay, SellerID: seller, ProviderSellerID: account, Currency: "USD",
			Attempt: 1, RequestNo: requestNo, Name: name, SHA256: sum, Rows: n, Bytes: size, SellerMinor: 9_00, Items: 1})
	}
	h.ledger = infiniapay.NewUnsentUploadLedger(files)
	h.configOf = func(session *load.SFTPSession) infiniapay.StageConfig {
		return infiniapay.StageConfig{Store: h.ledger, API: infiniapay.StageAPIOf(h.client), SFTP: session, WorkDir: workDir,
			WriteFile: write, Pacer: pipeline.NewPacer(pipeline.Limits{MaxInFlight: inFlight}), Parallel: inFlight,
			FirstPoll: 10 * time.Millisecond, Poll: 10 * time.Millisecond, Wait: 5 * time.Second}
	}
	h.stageOf = func(session *load.SFTPSession) pipeline.StageFunc {
		return infiniapay.UploadStage(h.configOf(session))
	}
	return h
}

// TestAnUploadStageWhoseFirstSFTPConnectionGetsNoAnswer: Infinia's SFTP
// server is hung before the stage's first connection to it (accepted,
// the handshake never answered). The stage uploaded nothing and ended
// resumable, but said only that its connections were "lost or refused",
// not the "not answering" the runbook's entry is found by, as it says
// when the server stops answering mid-way. Now it names Infinia's SFTP
// server as not answering, on one line, and the re-run once it answers
// uploads each file once.
func TestAnUploadStageWhoseFirstSFTPConnectionGetsNoAnswer(t *testing.T) {
	t.Parallel()
	h := newSFTPInfinia(t, 5, 2)
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}}
	h.proxy.hung.Store(true)
	summary, err := h.stageOf(h.session)(context.Background(), run)
	h.proxy.hung.Store(false)
	t.Logf("%s: %v", summary, err)
	if err == nil || pipeline.KindOf(err) != pipeline.KindFailed || !errors.Is(err, pipeline.ErrNoAnswer) ||
		!strings.Contains(err.Error(), "Infinia's SFTP server is not answering") || strings.Contains(err.Error(), "\n") {
		t.Errorf("%v: want the resumable end in one line, naming Infinia's SFTP server as not answering", err)
	}
	if held := h.proxy.held.Load(); held != sessionAttempts {
		t.Errorf("%d connections tried, want %d", held, sessionAttempts)
	}
	for _, e := range h.ledger.Uploads() {
		if e.State != pipeline.EffectPlanned || e.Sends != 0 {
			t.Errorf("upload %s %s after %d sends, want it planned and unsent", e.Key, e.State, e.Sends)
		}
	}
	if _, err := h.stageOf(h.answering)(context.Background(), run); err != nil {
		t.Fatalf("re-run: %v", err)
	}
	for _, e := range h.ledger.Uploads() {
		if e.State != pipeline.EffectSucceeded || e.Sends != 1 {
			t.Errorf("upload %s %s after %d sends, want succeeded after 1", e.Key, e.State, e.Sends)
		}
	}
}

// TestAnAcceptedTradeFileLeavesTheWorkDirectory: the trade files stayed
// in the work directory once Infinia had accepted them, though nothing
// uploads an accepted file again, so a backfill's pod held every date of
// its range in its emptyDir at once (evicted past its sizeLimit). A file
// Infinia accepted is removed; one it refused stays, for a person.
func TestAnAcceptedTradeFileLeavesTheWorkDirectory(t *testing.T) {
	t.Parallel()
	h := newSFTPInfinia(t, 4, 2)
	h.fake.RefuseOrder("O02", "bad row")
	run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}}
	_, err := h.stageOf(h.answering)(context.Background(), run)
	if pipeline.KindOf(err) != pipeline.KindNeedsPerson {
		t.Errorf("%v, want the refused file for a person", err)
	}
	var accepted int
	for _, f := range h.ledger.Files() {
		_, err := os.Stat(filepath.Join(h.workDir, uploadDay.String(), f.Name))
		switch f.Status {
		case infiniapay.StatusSuccess:
			accepted++
			if !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s accepted and still in the work directory (%v)", f.Name, err)
			}
		case infiniapay.StatusFailed:
			if err != nil {
				t.Errorf("%s refused and not in the work directory: %v", f.Name, err)
			}
		default:
			t.Errorf("%s %q, want accepted or refused", f.Name, f.Status)
		}
	}
	if accepted != 3 {
		t.Errorf("%d files accepted, want 3", accepted)
	}
}

// TestAnUploadStageAgainstAHungSFTPServerStops: Infinia's SFTP server
// stops answering during the upload stage - its sftp-server stuck on a
// hung file system (sshd still answers, each file's transfer stalls), or
// the whole server stopped (SIGSTOP: the connections open stall, new ones
// are accepted and their handshake never answered). No SFTP error said
// whether the server answered, so the uploads were not counted by the
// stage's breaker: each file was tried through its 3 connections (each
// stalled for load.DefaultSFTPOpTimeout, 2 minutes, or a handshake timeout),
// a few at a time, and tried again as the engine found it never arrived,
// until the wait was over. Now an upload whose every connection got no
// answer is pipeline.ErrNoAnswer: the third in a row stops the stage,
// nothing more is uploaded or asked, each file is left as the ledger
// holds it (an upload that got no answer unknown, asked about before it
// is sent again), and the stage ends resumable (exit 1) in one line
// naming Infinia's SFTP server as not answering. The re-run once it
// answers uploads each file, each landed once, and Infinia accepts each.
func TestAnUploadStageAgainstAHungSFTPServerStops(t *testing.T) {
	const n, inFlight = 20, 3
	for _, c := range []struct {
		name    string
		stalled bool // the transfers stall, sshd answering; else the whole server hangs
	}{{"stalled transfers", true}, {"hung server", false}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h := newSFTPInfinia(t, n, inFlight)
			run := &pipeline.Run{ID: 1, Key: pipeline.RunKey{Date: uploadDay, Shard: pipeline.Whole}}
			if err := h.session.Connect(context.Background()); err != nil {
				t.Fatal(err)
			}
			tries := func() int64 { return int64(h.faults.Calls(sftptest.Endpoint)) } // uploads begun at the server
			if c.stalled {
				h.faults.Add(fault.Rule{Endpoint: sftptest.Endpoint, Kind: fault.Latency, Prob: 1, Delay: 2 * time.Second})
			} else {
				h.proxy.hung.Store(true)
				tries = h.proxy.held.Load // connections never answered
			}
			began := time.Now()
			summary, err := h.stageOf(h.session)(context.Background(), run)
			took := time.Since(began)
			h.faults.Clear()
			h.proxy.hung.Store(false)
			t.Logf("took %s, %d tries: %s: %.600v", took, tries(), summary, err)
			if limit := int64((inFlight + pipeline.NotAnsweringAfter) * sessionAttempts); tries() > limit {
				t.Errorf("%d tries against a hung SFTP server, want at most %d", tries(), limit)
			}
			if !errors.Is(err, pipeline.ErrStillProcessing) || pipeline.KindOf(err) != pipeline.KindFailed ||
				!strings.Contains(err.Error(), "Infinia's SFTP server is not answering") || strings.Contains(err.Error(), "\n") {
				t.Errorf("%v: want the resumable end in one line, naming Infinia's SFTP server as not answering", err)
			}
			unknown := map[string]bool{}
			for _, e := range h.ledger.Uploads() {
				switch {
				case e.State == pipeline.EffectUnknown && e.Sends == 1:
					unknown[e.Key] = true
				case e.State != pipeline.EffectPlanned || e.Sends != 0:
					t.Errorf("upload %s %s after %d sends, want it planned, or unknown after its one send", e.Key, e.State, e.Sends)
				}
			}
			if len(unknown) == 0 || len(unknown) > inFlight+pipeline.NotAnsweringAfter {
				t.Errorf("%d uploads sent, want the few sent before the stop", len(unknown))
			}
			for _, f := range h.ledger.Files() {
				if f.Status != "" {
					t.Errorf("%s %s, want it left as it was", f.Name, f.Status)
				}
			}

			// The re-run, the server answering: each file uploaded, an
			// upload whose end was unknown asked about first (Infinia
			// does not know the file, the server does not have it) and
			// sent again once; each landed once, accepted by Infinia.
			if _, err := h.stageOf(h.answering)(context.Background(), run); err != nil {
				t.Fatalf("re-run: %v", err)
			}
			for _, f := range h.ledger.Files() {
				if f.Status != infiniapay.StatusSuccess {
					t.Errorf("%s %s, want accepted", f.Name, f.Status)
				}
			}
			for _, e := range h.ledger.Uploads() {
				want := 1
				if unknown[e.Key] {
					want = 2
				}
				if e.State != pipeline.EffectSucceeded || e.Sends != want {
					t.Errorf("upload %s %s after %d sends, want succeeded after %d", e.Key, e.State, e.Sends, want)
				}
			}
			h.mu.Lock()
			defer h.mu.Unlock()
			for _, f := range h.ledger.Files() {
				if got := h.renamed[f.Name]; got != 1 {
					t.Errorf("%s put in place %d times, want once", f.Name, got)
				}
			}
		})
	}
}
