package store

import "sync"

// Memory keeps values in process memory. The zero value is ready to use.
// Nothing is written to disk, so values are lost when the process exits.
//
// A Memory is safe for concurrent use. It stores and returns copies, so
// callers may reuse their slices.
type Memory struct {
	mu sync.Mutex
	m  map[string][]byte
}

// Get returns a copy of the value stored under key, or ErrNotFound.
func (m *Memory) Get(key string) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v, ok := m.m[key]
	if !ok {
		return nil, ErrNotFound
	}
	return append([]byte{}, v...), nil
}

// Set stores a copy of value under key, replacing any earlier value.
func (m *Memory) Set(key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m == nil {
		m.m = make(map[string][]byte)
	}
	m.m[key] = append([]byte{}, value...)
	return nil
}

// Delete removes the value stored under key. It returns ErrNotFound when
// there is none.
func (m *Memory) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.m[key]; !ok {
		return ErrNotFound
	}
	delete(m.m, key)
	return nil
}

// Status reports that values live in process memory only.
func (m *Memory) Status() Status {
	return Status{Backend: "memory", Reason: "memory store selected; nothing is persisted"}
}
