//go:build !unix

package rlimit

// Raise does nothing where there is no RLIMIT_NOFILE.
func Raise() (uint64, error) { return 0, nil }
