//go:build unix && !linux

package pgserver

import "syscall"

// setParentDeathSignal does nothing here: a server whose caller dies
// without calling Stop keeps running.
func setParentDeathSignal(*syscall.SysProcAttr) {}
