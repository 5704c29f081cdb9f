package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"
)

// PathRefused reports whether err, an error of the file system, says its
// path cannot be used as it is: no permission, a read-only file system, a
// file in its path, a name too long or a loop of links, no space or quota
// left, a directory where a file is read. Every retry meets it until a
// person acts: configuration (KindUsage). Any other failure of the file
// system - an I/O error of the volume (EIO), a network file system's
// server gone a moment (ESTALE, ETIMEDOUT), an interrupted call - says
// nothing of the path, and a retry may get past it.
func PathRefused(err error) bool {
	for _, refused := range []error{fs.ErrPermission, syscall.EROFS, syscall.ENOTDIR, syscall.EISDIR,
		syscall.ENAMETOOLONG, syscall.ELOOP, syscall.ENOSPC, syscall.EDQUOT} {
		if errors.Is(err, refused) {
			return true
		}
	}
	return false
}

// FileSystemFailed reports whether err is a failure of the file system
// in reading a file (a *fs.PathError in its chain) that says nothing of
// the file: neither missing nor refused (PathRefused). A retry may read it
// (EIO, ESTALE).
func FileSystemFailed(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && !errors.Is(err, fs.ErrNotExist) && !PathRefused(err)
}

// FileError is the error err of reading a file of settle's configuration
// (rules, a query, a key, a secret, known_hosts, a CA certificate) that op
// names (its flag): KindUsage, as it is, when the file is missing,
// refused (PathRefused) or not valid, which every retry meets until a
// person acts; of the kind inside err (KindFailed, exit 1: a retry is
// safe) when it is a failure of its file system a retry may get past
// (FileSystemFailed), which as KindUsage failed the Job for good.
func FileError(op string, err error) error {
	if err == nil {
		return nil
	}
	if FileSystemFailed(err) {
		return fmt.Errorf("%s: %w (its file system failed, not the file: a retry may read it)", op, err)
	}
	return E(KindUsage, op, err)
}
