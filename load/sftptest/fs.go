package sftptest

import (
	"errors"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/settlekit/settle/internal/fault"
)

// handler implements pkg/sftp's request handlers over a directory, for one
// connection.
type handler struct {
	root     *os.Root
	faults   *fault.Injector
	onRename func(string)
	drop     func() // closes the connection
}

// rel maps a client path (absolute after pkg/sftp cleaned it against "/")
// to a name relative to the root. os.Root refuses anything that would
// leave it, symbolic links included.
func rel(p string) string {
	p = strings.TrimPrefix(path.Clean("/"+p), "/")
	if p == "" {
		return "."
	}
	return filepath.FromSlash(p)
}

// Fileread opens a file for reading (Get).
func (h *handler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	f, err := h.root.Open(rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Filewrite opens a file for writing (Put), with the open flags of the
// request. It is one call of Endpoint for the fault injector.
func (h *handler) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	f, err := h.open(r)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// OpenFile opens a file for reading and writing (Open).
func (h *handler) OpenFile(r *sftp.Request) (sftp.WriterAtReaderAt, error) {
	f, err := h.open(r)
	if err != nil {
		return nil, err
	}
	return f, nil
}

func (h *handler) open(r *sftp.Request) (*file, error) {
	fl := r.Pflags()
	flags := os.O_WRONLY
	if fl.Read {
		flags = os.O_RDWR
	}
	if fl.Creat {
		flags |= os.O_CREATE
	}
	if fl.Trunc {
		flags |= os.O_TRUNC
	}
	if fl.Excl {
		flags |= os.O_EXCL
	}
	fa := h.faults.Next(Endpoint)
	switch fa.Kind {
	case fault.Latency:
		time.Sleep(fa.Delay)
	case fault.Reset:
		h.drop()
		return nil, errFault
	}
	f, err := h.root.OpenFile(rel(r.Filepath), flags, 0o644)
	if err != nil {
		return nil, err
	}
	w := &file{f: f, append: fl.Append, limit: -1, drop: h.drop}
	if fa.Kind == fault.Disconnect {
		w.limit = fa.Bytes
	}
	return w, nil
}

var errFault = errors.New("sftptest: connection dropped (injected fault)")

// statFault plays the fault of one call of StatEndpoint: a reset (or a
// disconnect, or a lost answer) drops the connection before the answer.
func (h *handler) statFault() error {
	fa := h.faults.Next(StatEndpoint)
	switch fa.Kind {
	case fault.Latency:
		time.Sleep(fa.Delay)
	case fault.Reset, fault.Disconnect, fault.Lost:
		h.drop()
		return errFault
	}
	return nil
}

// file is an open file. Writes at offsets may come concurrently.
type file struct {
	f       *os.File
	append  bool       // every write goes to the end, as with O_APPEND
	mu      sync.Mutex // serialises appends
	limit   int64      // bytes accepted before the connection is dropped; -1: no limit
	written atomic.Int64
	drop    func()
}

func (w *file) WriteAt(p []byte, off int64) (int, error) {
	if w.limit >= 0 {
		before := w.written.Add(int64(len(p))) - int64(len(p))
		if before+int64(len(p)) > w.limit {
			keep := max(w.limit-before, 0)
			n, _ := w.writeAt(p[:keep], off)
			w.drop()
			return n, errFault
		}
	}
	return w.writeAt(p, off)
}

func (w *file) writeAt(p []byte, off int64) (int, error) {
	if !w.append {
		return w.f.WriteAt(p, off)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	fi, err := w.f.Stat()
	if err != nil {
		return 0, err
	}
	return w.f.WriteAt(p, fi.Size())
}

func (w *file) ReadAt(p []byte, off int64) (int, error) { return w.f.ReadAt(p, off) }

func (w *file) Close() error { return w.f.Close() }

// Filecmd runs the commands: Setstat, Rename, PosixRename, Rmdir, Mkdir,
// Remove, Link. Symlink is not supported.
func (h *handler) Filecmd(r *sftp.Request) error {
	name := rel(r.Filepath)
	switch r.Method {
	case "Setstat":
		return h.setstat(name, r)
	case "Rename":
		return h.rename(name, rel(r.Target))
	case "PosixRename":
		return h.PosixRename(r)
	case "Rmdir":
		fi, err := h.root.Lstat(name)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return &os.PathError{Op: "rmdir", Path: r.Filepath, Err: errors.New("not a directory")}
		}
		return h.root.Remove(name)
	case "Mkdir":
		return h.root.Mkdir(name, 0o755)
	case "Remove":
		fi, err := h.root.Lstat(name)
		if err != nil {
			return err
		}
		if fi.IsDir() {
			return &os.PathError{Op: "remove", Path: r.Filepath, Err: errors.New("is a directory")}
		}
		return h.root.Remove(name)
	case "Link":
		return h.root.Link(name, rel(r.Target))
	}
	return sftp.ErrSSHFxOpUnsupported
}

// PosixRename renames, replacing the target (posix-rename@openssh.com).
func (h *handler) PosixRename(r *sftp.Request) error {
	to := rel(r.Target)
	if err := h.root.Rename(rel(r.Filepath), to); err != nil {
		return err
	}
	h.renamed(to)
	return nil
}

// rename renames without replacing anything, as OpenSSH's sftp-server
// does: link the new name (which fails if it exists), then unlink the old.
func (h *handler) rename(from, to string) error {
	fi, err := h.root.Lstat(from)
	if err != nil {
		return err
	}
	if fi.Mode().IsRegular() {
		if err := h.root.Link(from, to); err != nil {
			return err
		}
		if err := h.root.Remove(from); err != nil {
			return err
		}
	} else {
		if _, err := h.root.Lstat(to); err == nil {
			return &os.LinkError{Op: "rename", Old: from, New: to, Err: os.ErrExist}
		}
		if err := h.root.Rename(from, to); err != nil {
			return err
		}
	}
	h.renamed(to)
	return nil
}

func (h *handler) renamed(to string) {
	if h.onRename != nil {
		h.onRename(filepath.ToSlash(to))
	}
}

func (h *handler) setstat(name string, r *sftp.Request) error {
	flags, attrs := r.AttrFlags(), r.Attributes()
	if flags.Size {
		f, err := h.root.OpenFile(name, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(int64(attrs.Size))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	if flags.Permissions {
		if err := h.root.Chmod(name, attrs.FileMode().Perm()); err != nil {
			return err
		}
	}
	if flags.Acmodtime {
		if err := h.root.Chtimes(name, attrs.AccessTime(), attrs.ModTime()); err != nil {
			return err
		}
	}
	return nil // owner changes are ignored
}

// Filelist answers List (a directory's entries), Stat and Readlink (not
// supported).
func (h *handler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	name := rel(r.Filepath)
	switch r.Method {
	case "List":
		d, err := h.root.Open(name)
		if err != nil {
			return nil, err
		}
		defer d.Close()
		entries, err := d.ReadDir(-1)
		if err != nil {
			return nil, err
		}
		var infos []os.FileInfo
		for _, e := range entries {
			if fi, err := e.Info(); err == nil {
				infos = append(infos, fi)
			}
		}
		slices.SortFunc(infos, func(a, b os.FileInfo) int { return strings.Compare(a.Name(), b.Name()) })
		return lister(infos), nil
	case "Stat":
		if err := h.statFault(); err != nil {
			return nil, err
		}
		fi, err := h.root.Stat(name)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat answers Lstat without following a final symbolic link.
func (h *handler) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	if err := h.statFault(); err != nil {
		return nil, err
	}
	fi, err := h.root.Lstat(rel(r.Filepath))
	if err != nil {
		return nil, err
	}
	return lister{fi}, nil
}

// lister lists file infos, in pages.
type lister []os.FileInfo

func (l lister) ListAt(dst []os.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(dst, l[off:])
	if int(off)+n == len(l) {
		return n, io.EOF
	}
	return n, nil
}
