//go:build (linux && (race || 386)) || darwin || freebsd || netbsd || openbsd || dragonfly

package proxy

import "syscall"

// peekFD reads what fd holds without taking it and without waiting.
func peekFD(fd uintptr, b []byte) error {
	_, _, err := syscall.Recvfrom(int(fd), b, syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	return err
}
