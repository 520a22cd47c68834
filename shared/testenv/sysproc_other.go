//go:build !linux

package testenv

import "syscall"

// ownedChild: outside Linux there is no parent-death signal; a test process
// killed with SIGKILL leaves its servers running.
func ownedChild() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}
