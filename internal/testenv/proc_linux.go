package testenv

import "syscall"

// dieWithParent makes the kernel kill the gateway when the test binary
// dies, however it dies. Pdeathsig fires when the creating OS thread
// exits; the Go runtime only retires threads whose goroutine exits while
// locked to it, which the code starting gateways never does. Its own
// process group keeps a terminal's Ctrl-C from killing it before the test
// binary has finished its cleanups.
func dieWithParent() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
