//go:build unix

package api

import "syscall"

// peekClosed reports whether the socket fd has reached end of file or an
// error, without taking any byte and without blocking.
func peekClosed(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	if err != nil {
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK && err != syscall.EINTR
	}
	return n == 0
}
