package testenv

import "syscall"

// ownedChild has the kernel kill a server the tests started when the test
// process dies, even of SIGKILL or a timeout, so none outlives its test.
// Pdeathsig follows the thread that started the child; Go keeps its threads
// alive unless a goroutine exits locked to one, which nothing here does.
func ownedChild() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
