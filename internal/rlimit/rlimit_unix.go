//go:build unix

// Package rlimit raises the open-file limit of load-test processes (the
// load tool and the servers it measures), which hold thousands of sockets.
package rlimit

import "syscall"

// Raise lifts the soft RLIMIT_NOFILE to the hard limit and returns
// the limit in force afterwards.
func Raise() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, err
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, err
		}
	}
	return uint64(l.Cur), nil
}
