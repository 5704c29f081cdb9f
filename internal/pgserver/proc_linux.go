package pgserver

import "syscall"

// setParentDeathSignal makes the kernel send the child SIGQUIT (immediate
// shutdown for the postmaster) when its parent dies.
func setParentDeathSignal(a *syscall.SysProcAttr) {
	a.Pdeathsig = syscall.SIGQUIT
}
