// Package store keeps opaque bytes under string keys: in the OS keychain
// (go-keyring) or in memory. It knows nothing about OAuth.
package store

import "errors"

// ErrNotFound is returned by Get and Delete when nothing is stored under
// the key.
var ErrNotFound = errors.New("store: not found")
