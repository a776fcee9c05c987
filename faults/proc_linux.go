package main

import "syscall"

// procAttr makes a child die with this process (SIGKILL), so that an
// interrupted suite leaves no consumer or simulator behind.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
