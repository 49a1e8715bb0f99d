package store

// Status describes where a store keeps its values, for `auth status`.
type Status struct {
	// Backend names where values are kept now: "keychain (Secret
	// Service)", "keychain (macOS)", "keychain (Windows Credential
	// Manager)" or "memory".
	Backend string

	// Available reports whether the OS keychain answered a read.
	Available bool

	// Writable reports whether the OS keychain accepted a test write and
	// is in use, so values outlive the process.
	Writable bool

	// Reason says why the OS keychain is not used; it is "" when it is.
	Reason string
}
