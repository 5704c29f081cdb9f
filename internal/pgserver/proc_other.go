//go:build !unix

package pgserver

import (
	"os"
	"syscall"
)

func procAttr(*account) *syscall.SysProcAttr { return nil }

func quit(p *os.Process) error { return p.Kill() }
