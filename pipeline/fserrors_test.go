package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"
)

// TestFileErrorTellsAFileSystemFailureFromConfiguration: a file of
// settle's configuration that could not be read was exit 2 whatever the
// failure, the Job failed for good (podFailurePolicy FailJob) on an I/O
// error of its volume or a network file system's server gone a moment.
// Those are KindFailed (a retry is safe); a file missing, refused or not
// valid stays KindUsage; both name the file and the flag.
func TestFileErrorTellsAFileSystemFailureFromConfiguration(t *testing.T) {
	const path = "/etc/settle/rules.csv"
	for errno, want := range map[syscall.Errno]Kind{
		syscall.EIO: KindFailed, syscall.ESTALE: KindFailed, syscall.ETIMEDOUT: KindFailed, syscall.EINTR: KindFailed,
		syscall.ENOENT: KindUsage, syscall.EACCES: KindUsage, syscall.EPERM: KindUsage, syscall.EISDIR: KindUsage,
		syscall.ENOTDIR: KindUsage, syscall.ELOOP: KindUsage, syscall.ENAMETOOLONG: KindUsage,
	} {
		for _, op := range []string{"open", "read"} {
			// As a loader returns it: os.ReadFile's error, wrapped.
			read := fmt.Errorf("private key: %w", &fs.PathError{Op: op, Path: path, Err: errno})
			err := FileError("--rules", read)
			if KindOf(err) != want || !strings.Contains(err.Error(), "--rules") || !strings.Contains(err.Error(), path) || !errors.Is(err, errno) {
				t.Errorf("%s %v: %v, kind %v; want %v naming --rules and the file", op, errno, err, KindOf(err), want)
			}
			if want == KindFailed && !strings.Contains(err.Error(), "a retry may read it") {
				t.Errorf("%s %v: %v does not say a retry may read it", op, errno, err)
			}
		}
	}
	// A reader's failure a parser returned as KindFailed: its kind decided
	// by the file system's error all the same.
	for errno, want := range map[syscall.Errno]Kind{syscall.EIO: KindFailed, syscall.EISDIR: KindUsage} {
		err := FileError("--rules", E(KindFailed, "read rules", &fs.PathError{Op: "read", Path: path, Err: errno}))
		if KindOf(err) != want {
			t.Errorf("read rules, %v: kind %v, want %v", errno, KindOf(err), want)
		}
	}
	// Content not valid: configuration, whatever kind was inside.
	for _, content := range []error{errors.New("not PEM"), E(KindFailed, "parse", errors.New("bad"))} {
		if err := FileError("--rules", content); KindOf(err) != KindUsage {
			t.Errorf("%v: kind %v, want usage", content, KindOf(err))
		}
	}
	if FileError("--rules", nil) != nil {
		t.Error("FileError of nil is not nil")
	}
}
