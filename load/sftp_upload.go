package load

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"github.com/settlekit/settle/pipeline"
	"golang.org/x/sync/errgroup"
)

// Upload writes a file atomically, as name in the remote directory:
//
//   - into Dir/.NAME.part, created or truncated (a broken earlier upload is
//     restarted, never appended to), streaming from open() and computing
//     its sha256 on the way, with up to Concurrency write requests in
//     flight;
//   - then it checks that open() gave exactly size bytes, that their sha256
//     is wantSHA256 (hex), and that the remote file (Stat) has size bytes;
//     on a mismatch the temporary file is removed and an error returned;
//   - then it renames it into place with posix-rename@openssh.com, which
//     replaces a file of the same name: a file under its final name is
//     always whole.
//
// Cancelling ctx closes the connection, and Upload returns an error
// wrapping ctx.Err(); so does an upload during which the server answered
// nothing on the connection for OpTimeout (stalled: it is closed). Nothing is retried: after an error, what is under the
// final name is what was there before, or the whole file if the error came
// after the rename (an answer lost with the connection); a temporary file
// may be left, which the next upload of the name starts over.
func (s *SFTP) Upload(ctx context.Context, name string, size int64, wantSHA256 string, open func() (io.ReadCloser, error)) error {
	return s.uploadTracked(ctx, name, tempName(name, "", 1), size, wantSHA256, open, nil)
}

// tempName is the temporary name of attempt n (from 1) of an upload of
// name by the call tagged call ("": .NAME.part, SFTP.Upload's): every
// attempt of every SFTPSession.Upload call writes a name of its own, so
// that a rename a lost connection asked for, arriving late, can only move
// the whole file that attempt verified, never one being written again.
func tempName(name, call string, n int) string {
	if call == "" {
		return "." + name + ".part"
	}
	return fmt.Sprintf(".%s.%s-%d.part", name, call, n)
}

// uploadTracked is Upload through the temporary name tmp; renameSent, when
// not nil, is set once the rename into place has been asked for.
func (s *SFTP) uploadTracked(ctx context.Context, name, tmp string, size int64, wantSHA256 string, open func() (io.ReadCloser, error), renameSent *bool) error {
	ctx, stop := s.watched(ctx)
	defer stop()
	err := s.guard(ctx, func() error { return s.upload(name, tmp, size, wantSHA256, open, renameSent) })
	if err != nil {
		return fmt.Errorf("upload %s to %s: %w", name, s.cfg.Addr, err)
	}
	return nil
}

// errStalled is the cause of a call cut for making no progress (watched).
var errStalled = fmt.Errorf("stalled: %w", context.DeadlineExceeded)

// watched is ctx for one call, cancelled with errStalled once OpTimeout
// has passed since the call began, or since the server last answered an
// SFTP request on the connection, whichever is later: a server answering
// the connection's calls is working, however slowly (32 files share one
// link), and one answering none for that long is stuck. stop ends the
// watch.
func (s *SFTP) watched(ctx context.Context) (_ context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	began := time.Now().UnixNano()
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	var check func()
	check = func() {
		idle := time.Since(time.Unix(0, max(began, s.answered.Load())))
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return
		}
		if idle >= s.cfg.OpTimeout {
			cancel(fmt.Errorf("%w: no answer from the SFTP server for %s", errStalled, idle.Round(time.Millisecond)))
			return
		}
		t = time.AfterFunc(s.cfg.OpTimeout-idle, check)
	}
	mu.Lock()
	t = time.AfterFunc(s.cfg.OpTimeout, check)
	mu.Unlock()
	return ctx, func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
		cancel(nil)
	}
}

func (s *SFTP) upload(name, tmpName string, size int64, wantSHA256 string, open func() (io.ReadCloser, error), renameSent *bool) error {
	if err := checkName(name); err != nil {
		return err
	}
	want, err := hex.DecodeString(wantSHA256)
	if err != nil || len(want) != sha256.Size {
		return fmt.Errorf("want sha256 %q: not 64 hex digits", wantSHA256)
	}
	if size < 0 {
		return fmt.Errorf("negative size %d", size)
	}
	src, err := open()
	if err != nil {
		return fmt.Errorf("open source: %w", err)
	}
	defer src.Close()
	tmp, final := path.Join(s.cfg.Dir, tmpName), path.Join(s.cfg.Dir, name)
	f, err := s.client.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
	if err != nil {
		return fmt.Errorf("create %s: %w", tmp, err)
	}
	h := sha256.New()
	// One byte more than expected is enough to tell a source that is too long.
	n, err := s.write(f, io.TeeReader(io.LimitReader(src, size+1), h), size)
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("close %s: %w", tmp, cerr)
	}
	if err != nil {
		// Best effort: the next upload truncates it anyway.
		_ = s.client.Remove(tmp)
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if n != size {
		return s.discard(tmp, fmt.Errorf("the source gave %s bytes, want %d", short(n, size), size))
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return s.discard(tmp, fmt.Errorf("sha256 of the data sent is %x, want %x", got, want))
	}
	fi, err := s.client.Stat(tmp)
	if err != nil {
		return fmt.Errorf("stat %s: %w", tmp, err)
	}
	if fi.Size() != size {
		return s.discard(tmp, fmt.Errorf("%s has %d bytes after the upload, want %d", tmp, fi.Size(), size))
	}
	if renameSent != nil {
		*renameSent = true
	}
	if err := s.client.PosixRename(tmp, final); err != nil {
		return fmt.Errorf("rename %s to %s: %w", tmp, final, err)
	}
	return nil
}

// write copies r (size bytes expected) to f. A file that fits in one
// write request goes in one, from a buffer of its size: pkg/sftp's
// concurrent ReadFrom would allocate a whole packet and start its workers
// for it, which counts with thousands of small files.
func (s *SFTP) write(f *sftp.File, r io.Reader, size int64) (int64, error) {
	if size >= int64(s.packet) {
		return f.ReadFromWithConcurrency(r, s.concurrency(size))
	}
	buf := make([]byte, size+1)
	n, err := io.ReadFull(r, buf)
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return int64(n), err
	}
	if n == 0 {
		return 0, nil
	}
	_, err = f.WriteAt(buf[:n], 0)
	return int64(n), err
}

// short formats a byte count read through a limit of size+1.
func short(n, size int64) string {
	if n > size {
		return "more than " + fmt.Sprint(size)
	}
	return fmt.Sprint(n)
}

// concurrency is the number of write requests in flight for a file of size
// bytes: no more than it has packets.
func (s *SFTP) concurrency(size int64) int {
	n := size/int64(s.packet) + 1
	if n > int64(s.cfg.Concurrency) {
		return s.cfg.Concurrency
	}
	return int(n)
}

// discard removes the temporary file tmp after err, when the connection
// still allows it.
func (s *SFTP) discard(tmp string, err error) error {
	if rerr := s.client.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		return fmt.Errorf("%w (and removing %s failed: %v)", err, tmp, rerr)
	}
	return err
}

// checkName accepts a plain file name: no directory, not hidden (the
// temporary names are), printable.
func checkName(name string) error {
	switch {
	case name == "", name == ".", name == "..":
		return fmt.Errorf("file name %q: empty or a directory", name)
	case strings.ContainsAny(name, "/\\"):
		return fmt.Errorf("file name %q: must not contain a directory", name)
	case strings.HasPrefix(name, "."):
		return fmt.Errorf("file name %q: must not start with a dot", name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("file name %q: control character", name)
		}
	}
	return nil
}

// removeTemps removes, as it can, the temporary files names (left by
// connections lost while they wrote).
func (s *SFTP) removeTemps(ctx context.Context, names []string) {
	ctx, stop := s.watched(ctx)
	defer stop()
	_ = s.guard(ctx, func() error {
		for _, n := range names {
			_ = s.client.Remove(path.Join(s.cfg.Dir, n))
		}
		return nil
	})
}

// errRenameUnknown: an upload whose rename into place was asked for on a
// connection since lost, of which neither the temporary file nor the file
// under its final name is there: the server took it (Infinia takes what
// it receives) or removed it. Only the server can say.
var errRenameUnknown = fmt.Errorf("the rename into place was asked for on a connection since lost: %w", pipeline.ErrDeliveryUnknown)

// finishRename ends, on a new connection, an upload of name whose rename
// of tmpName into place was asked for on a connection since lost: it
// renames tmpName into place itself (done: the old rename never
// happened, and cannot now, arriving late, as tmpName is gone); when
// tmpName is not there, the old rename took place if the final name holds
// size bytes; else the outcome is errRenameUnknown, for the server's word
// (the upload's status) to settle, never a second upload.
func (s *SFTP) finishRename(ctx context.Context, name, tmpName string, size int64) error {
	wctx, stop := s.watched(ctx)
	err := s.guard(wctx, func() error { return s.client.PosixRename(path.Join(s.cfg.Dir, tmpName), path.Join(s.cfg.Dir, name)) })
	stop()
	if err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	got, exists, err := s.Stat(ctx, name)
	switch {
	case err != nil:
		return err
	case exists && got == size:
		return nil
	}
	return fmt.Errorf("upload %s to %s: %w, and neither %s nor the file is there now: taken by the server, or removed", name, s.cfg.Addr, errRenameUnknown, tmpName)
}

// Stat reports whether name exists in the remote directory under its final
// name, and its size. Cancelling ctx closes the connection, as does a stat
// not done within OpTimeout.
func (s *SFTP) Stat(ctx context.Context, name string) (size int64, exists bool, err error) {
	ctx, stop := s.watched(ctx)
	defer stop()
	err = s.guard(ctx, func() error {
		if err := checkName(name); err != nil {
			return err
		}
		fi, err := s.client.Stat(path.Join(s.cfg.Dir, name))
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		size, exists = fi.Size(), true
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("stat %s on %s: %w", name, s.cfg.Addr, err)
	}
	return size, exists, nil
}

// guard runs op, closing the connection if ctx is cancelled meanwhile. It
// explains the errors of a connection closed by a cancellation or a
// keepalive timeout.
func (s *SFTP) guard(ctx context.Context, op func() error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	stop := context.AfterFunc(ctx, func() { s.abort("cancelled: " + context.Cause(ctx).Error()) })
	err := op()
	stop()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if why := s.broken.Load(); why != nil {
		return fmt.Errorf("connection closed (%s): %w", *why, err)
	}
	return err
}

// UploadFile is one file for UploadMany.
type UploadFile struct {
	Name   string
	Size   int64                         // bytes
	SHA256 string                        // hex
	Open   func() (io.ReadCloser, error) // called once, when its upload starts
}

// UploadMany uploads files with Upload, up to parallel at a time (default
// 16) over the one connection, which pays off for many small files: each
// upload waits on several round trips. A file that fails does not stop the
// others; the error joins the errors of every file that failed, each
// naming its file. Once ctx is cancelled no upload starts, and those in
// progress fail.
func (s *SFTP) UploadMany(ctx context.Context, files []UploadFile, parallel int) error {
	if parallel <= 0 {
		parallel = 16
	}
	errs := make([]error, len(files))
	var g errgroup.Group
	g.SetLimit(parallel)
	for i, f := range files {
		if ctx.Err() != nil {
			errs[i] = fmt.Errorf("upload %s to %s: %w", f.Name, s.cfg.Addr, ctx.Err())
			continue
		}
		g.Go(func() error {
			errs[i] = s.Upload(ctx, f.Name, f.Size, f.SHA256, f.Open)
			return nil
		})
	}
	_ = g.Wait()
	return errors.Join(errs...)
}
