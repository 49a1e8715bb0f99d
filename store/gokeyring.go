//go:build !((dragonfly && cgo) || (freebsd && cgo) || linux || netbsd || openbsd)

package store

// newOSKeyring returns the OS keychain: go-keyring's functions, which on
// macOS and Windows keep one entry per service and key.
func newOSKeyring() Backend { return goKeyring{} }
