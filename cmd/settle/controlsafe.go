package main

import (
	"fmt"
	"io"
	"sync"
)

// controlSafe wraps w so that control characters other than newline and
// tab - C0, DEL and the C1 controls U+0080..U+009F (UTF-8 0xC2 0x80..0x9F)
// - are written as visible escapes (\x1b, \u007f, \u009b): settle prints
// what providers and the platform said (failure reasons, error-file rows,
// a receiver's review state, a binding's redirect URL), and an escape
// sequence in it reached the operator's terminal as one (found by a
// security review). Every command's stdout and stderr go through it
// (runAt), the log lines and the error a command ends with (exitCode)
// too, but for the live progress line on a terminal, settle's own words
// (escapeOutput). DEL and C1 are written as JSON writes an
// escape, and JSON has no raw C0, so JSON through it (settle status -o
// json) is the same JSON.
func controlSafe(w io.Writer) io.Writer { return &escaper{w: w} }

type escaper struct {
	mu      sync.Mutex // writes may come from several goroutines, as to an *os.File
	w       io.Writer
	pending bool // the last write ended with 0xC2, the first byte of a C1 control or of another rune
}

func (e *escaper) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]byte, 0, len(p)+8)
	for i := 0; i < len(p); i++ {
		b := p[i]
		if e.pending {
			e.pending = false
			if b >= 0x80 && b <= 0x9f {
				out = fmt.Appendf(out, `\u%04x`, b)
				continue
			}
			out = append(out, 0xc2)
		}
		switch {
		case b == 0xc2:
			if i+1 == len(p) {
				e.pending = true
				continue
			}
			if n := p[i+1]; n >= 0x80 && n <= 0x9f {
				out = fmt.Appendf(out, `\u%04x`, n)
				i++
				continue
			}
			out = append(out, b)
		case b == '\n' || b == '\t':
			out = append(out, b)
		case b == 0x7f:
			out = append(out, `\u007f`...)
		case b < 0x20:
			out = fmt.Appendf(out, `\x%02x`, b)
		default:
			out = append(out, b)
		}
	}
	if _, err := e.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}
