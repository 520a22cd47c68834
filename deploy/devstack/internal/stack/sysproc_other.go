//go:build !linux

package stack

import "syscall"

// ownedChild puts a child in its own process group. Outside Linux there is no
// parent-death signal: a devstack killed with SIGKILL leaves redis-server
// running, and the next start refuses its port.
func ownedChild() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
