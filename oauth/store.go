package oauth

// Store is the persistence that the OAuth engine needs: opaque bytes under
// string keys. The store package provides the keychain and memory
// implementations; Get reports a missing key with an error that matches
// store.ErrNotFound under errors.Is.
//
// Implementations must be safe for concurrent use.
type Store interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte) error
	Delete(key string) error
}
