package stack

import "syscall"

// ownedChild puts a child in its own process group and has the kernel kill it
// when devstack dies. Pdeathsig follows the thread that started the child;
// Go keeps its threads alive unless a goroutine exits locked to one, which
// nothing here does.
func ownedChild() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
