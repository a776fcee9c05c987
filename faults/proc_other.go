//go:build !linux

package main

import "syscall"

// procAttr: elsewhere children are cleaned up by suite.close only.
func procAttr() *syscall.SysProcAttr { return nil }
