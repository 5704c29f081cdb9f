//go:build unix

package pgserver

import (
	"os"
	"syscall"
)

// procAttr runs a child as who (when not nil) with a parent-death signal
// where the system has one.
func procAttr(who *account) *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{}
	if who != nil {
		// No supplementary groups: the child gets exactly who's uid and gid.
		a.Credential = &syscall.Credential{Uid: uint32(who.uid), Gid: uint32(who.gid)}
	}
	setParentDeathSignal(a)
	return a
}

// quit asks the postmaster for an immediate shutdown, as `pg_ctl stop -m
// immediate` does.
func quit(p *os.Process) error {
	return p.Signal(syscall.SIGQUIT)
}
