package load

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/settlekit/settle/pipeline"
)

// SFTPSession is one SFTP server as a provider's upload stage uses it
// (infiniapay.FileUploader): a connection dialled on first use and dialled
// again when it is lost - a connection dropped while a file's status is
// checked, or between two files, costs a reconnect, not the run. Upload
// and Stat are safe to repeat (each attempt of an upload writes a
// temporary name of its own and renames atomically; one whose rename was
// asked for is ended, not repeated: see Upload), so after a lost
// connection they are repeated on a new one, up to Attempts times in all. A configuration error (host key,
// authentication, an incomplete config: kind pipeline.KindUsage) is never
// retried. Its methods are safe for concurrent use.
type SFTPSession struct {
	cfg SFTPConfig
	// Attempts is how many connections one call may use; default 3.
	Attempts int
	// Dial connects; default DialSFTP.
	Dial func(context.Context, SFTPConfig) (*SFTP, error)

	mu   sync.Mutex
	conn *SFTP
	// unanswered is the last dial's error when it got no answer
	// (errUnanswered), nil once one connects; dialled counts the dials
	// ended (get).
	unanswered error
	dialled    atomic.Int64
}

// NewSFTPSession returns a session for cfg; nothing is dialled yet.
func NewSFTPSession(cfg SFTPConfig) *SFTPSession {
	return &SFTPSession{cfg: cfg}
}

// get returns the session's connection, dialled when there is none. The
// calls wait for one dial at a time: a dial that ended while a call
// waited, with no answer (errUnanswered: none made, or its handshake not
// answered in time), is that call's failure too, rather than one more
// dial after it - as a dial that connected is its connection. Before,
// each waiting call dialled in turn: against a server that accepts and
// never answers, 32 uploads in flight took 32 handshake timeouts (8
// minutes at 15 s) for each of their redials, and a stage's breaker
// tripped only once 3 of them had used all their connections.
func (s *SFTPSession) get(ctx context.Context) (*SFTP, error) {
	seen := s.dialled.Load()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		return s.conn, nil
	}
	if s.unanswered != nil && s.dialled.Load() != seen {
		return nil, s.unanswered // dialled while this call waited, with no answer
	}
	dial := s.Dial
	if dial == nil {
		dial = DialSFTP
	}
	conn, err := dial(ctx, s.cfg)
	s.dialled.Add(1)
	s.unanswered = nil
	if err != nil {
		if errors.Is(err, errUnanswered) {
			s.unanswered = err
		}
		return nil, err
	}
	s.conn = conn
	return conn, nil
}

// drop closes conn if it is still the session's connection.
func (s *SFTPSession) drop(conn *SFTP) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == conn {
		s.conn.Close()
		s.conn = nil
	}
}

// Connect dials unless connected: the server is reachable, is the one we
// trust, and takes our key. A refused host key or key is KindUsage.
func (s *SFTPSession) Connect(ctx context.Context) error {
	return s.do(ctx, func(*SFTP) error { return nil })
}

// Upload uploads a file atomically (SFTP.Upload), on a new connection
// when the one it used was lost, each attempt under a temporary name of
// its own. When the connection was lost after the rename into place was
// asked for, the new one does not upload again: it ends that rename
// (SFTP.finishRename), and when it cannot tell whether the file landed,
// says so (errRenameUnknown: the upload's outcome is then the server's to
// tell). A lost answer to the rename uploaded a file that had landed a
// second time, and a late rename of the lost connection could move a file
// being written again (found by reviews).
func (s *SFTPSession) Upload(ctx context.Context, name string, size int64, sha string, open func() (io.ReadCloser, error)) error {
	call := callTag()
	var temps []string // the temporary names written, in order
	renamed := ""      // the temporary name whose rename a lost connection asked for
	err := s.do(ctx, func(c *SFTP) error {
		var err error
		if renamed != "" {
			err = c.finishRename(ctx, name, renamed, size)
		} else {
			tmp := tempName(name, call, len(temps)+1)
			temps = append(temps, tmp)
			sent := false
			if err = c.uploadTracked(ctx, name, tmp, size, sha, open, &sent); err != nil && sent && c.lost(err) {
				renamed = tmp // asked for, and the answer lost with the connection (a refusal is an answer)
			}
		}
		if err == nil && len(temps) > 1 {
			c.removeTemps(ctx, temps[:len(temps)-1]) // what the lost attempts left
		}
		return err
	})
	if err != nil && renamed != "" && !errors.Is(err, pipeline.ErrDeliveryUnknown) {
		// Given up with the rename asked for: whether it landed is unknown,
		// whatever failed last (never sent again blindly). The error names
		// the temporary file, for FinishUpload to end the rename later.
		err = fmt.Errorf("%w; %w%s%s)", err, errRenameUnknown, tempMark, renamed)
	}
	return err
}

// tempMark begins, in the error of an upload given up with its rename
// into place asked for, the temporary name that rename was to move
// (FinishUpload reads it back from the error as the ledger keeps it).
const tempMark = " (its temporary file: "

// FinishUpload ends, on the session's connection, an upload of name that
// Upload gave up with its delivery unknown, from its error as the ledger
// keeps it (lastError): the upload's own rename into place was asked for
// on a connection since lost. When the temporary file that rename was to
// move is still there, the rename never happened (a rename moves it): it
// is renamed into place now (SFTP.finishRename), and a rename of the old
// connection arriving late finds nothing to move. landed is true then,
// and when the file is under its final name with size bytes. False: the
// error names no temporary file, or it is gone and the file is not under
// its final name (taken by the server, or removed): only the server's
// word can settle it, never a second upload. Before, such an upload
// stayed unknown however many runs followed (--infinia-lost-after, a
// day, and then a person), its temporary file whole on the server: three
// connections lost in one Upload call, the rename asked on the last
// (found by the fault matrix in CI).
func (s *SFTPSession) FinishUpload(ctx context.Context, name string, size int64, lastError string) (landed bool, err error) {
	tmp, ok := askedRename(name, lastError)
	if !ok {
		return false, nil
	}
	err = s.do(ctx, func(c *SFTP) error { return c.finishRename(ctx, name, tmp, size) })
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, errRenameUnknown):
		return false, nil
	}
	return false, err
}

// askedRename reads from an upload's error the temporary name of name
// whose rename into place was asked for (tempMark): one of Upload's own
// temporary names of name, or nothing.
func askedRename(name, lastError string) (string, bool) {
	_, rest, ok := strings.Cut(lastError, tempMark)
	if !ok {
		return "", false
	}
	prefix := "." + name + "."
	rest, ok = strings.CutPrefix(rest, prefix)
	if !ok {
		return "", false
	}
	mid, _, ok := strings.Cut(rest, ".part)")
	call, n, found := strings.Cut(mid, "-")
	if !ok || !found || len(call) != 8 || strings.Trim(call, "0123456789abcdef") != "" || n == "" || strings.Trim(n, "0123456789") != "" {
		return "", false
	}
	return prefix + mid + ".part", true
}

// callTag is a random tag for one Upload call's temporary names.
func callTag() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Stat reports whether name exists under its final name and its size
// (SFTP.Stat), on a new connection when the one it used was lost.
func (s *SFTPSession) Stat(ctx context.Context, name string) (size int64, exists bool, err error) {
	err = s.do(ctx, func(c *SFTP) error {
		var err error
		size, exists, err = c.Stat(ctx, name)
		return err
	})
	return size, exists, err
}

// do runs op on the session's connection. When op fails and the
// connection turns out to be lost (or cannot be made), it is dropped, and
// op runs again on a new one, up to Attempts connections.
//
// Its error once they are all used is pipeline.ErrNoAnswer when the last
// got no answer at all: no connection made, or none that answered the
// handshake in time (HandshakeTimeout), or the connection lost before
// op's answer - closed for a stall (OpTimeout) or an unanswered keepalive,
// or closed or reset by the server. As the providers' HTTP clients mark
// a call whose last attempt got no answer, so that a stage's breaker
// counts it (pipeline.NotAnsweringAfter in a row stop the stage). An
// error the server answered - a refused file, permission denied, a full
// disk, on a connection that is fine - is op's own and returned at once,
// never marked; so is one of configuration (KindUsage) or of ctx.
func (s *SFTPSession) do(ctx context.Context, op func(*SFTP) error) error {
	attempts := s.Attempts
	if attempts <= 0 {
		attempts = 3
	}
	var errs []error
	silent := false // the last connection got no answer
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := pause(ctx, time.Duration(i)*100*time.Millisecond); err != nil {
				return errors.Join(append(errs, err)...)
			}
		}
		conn, err := s.get(ctx)
		if err != nil {
			if pipeline.KindOf(err) == pipeline.KindUsage || ctx.Err() != nil {
				return err
			}
			errs = append(errs, err)
			silent = errors.Is(err, errUnanswered)
			continue
		}
		err = op(conn)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !conn.lost(err) {
			return err // the connection is fine: the error is the operation's
		}
		s.drop(conn)
		errs = append(errs, fmt.Errorf("connection lost, reconnecting: %w", err))
		silent = true
	}
	err := fmt.Errorf("sftp %s: %d connections lost or refused: %w", s.cfg.Addr, attempts, errors.Join(errs...))
	if silent {
		return pipeline.NoAnswer(err)
	}
	return err
}

func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Close closes the connection, if any.
func (s *SFTPSession) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}

// lost reports whether err, of a call on the connection, came from losing
// the connection: closed (a keepalive unanswered, a call stalled, Close),
// or the server gone. Any other error is the call's own, and the
// connection, shared by the other files' uploads, is kept: a probe of it
// that waited behind their data closed it (found by a review).
func (s *SFTP) lost(err error) bool {
	if s.broken.Load() != nil {
		return true
	}
	select {
	case <-s.done:
		return true
	default:
	}
	return errors.Is(err, sftp.ErrSSHFxConnectionLost) || connGone(err)
}
