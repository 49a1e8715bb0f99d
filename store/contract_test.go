package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// oauthStore is a copy of oauth.Store, the interface the OAuth engine
// consumes; store must not import oauth.
type oauthStore interface {
	Get(key string) ([]byte, error)
	Set(key string, value []byte) error
	Delete(key string) error
}

var (
	_ oauthStore = (*Memory)(nil)
	_ oauthStore = (*Keychain)(nil)
	_ Backend    = goKeyring{}
)

const tokenJSON = `{"access_token":"at-123","token_type":"Bearer","expires_in":3600,"scope":"read offline_access","refresh_token":"rt-456"}`

// bigValue is a JSON value of about n bytes whose multi-byte characters
// land on every possible part boundary.
func bigValue(n int) []byte {
	var b strings.Builder
	b.WriteString(`{"access_token":"`)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%d-é€𝄞-", i)
	}
	b.WriteString(`"}`)
	return []byte(b.String())
}

// testStoreContract checks the semantics every store shares. newStore
// returns an empty store and registers any cleanup.
func testStoreContract(t *testing.T, newStore func(t *testing.T) oauthStore) {
	tests := []struct {
		name string
		run  func(t *testing.T, s oauthStore)
	}{
		{"get missing", func(t *testing.T, s oauthStore) {
			if got, err := s.Get("oauth:tokens:https://missing.example"); !errors.Is(err, ErrNotFound) || got != nil {
				t.Errorf("Get(missing) = %q, %v; want nil, ErrNotFound", got, err)
			}
		}},
		{"round trip", func(t *testing.T, s oauthStore) {
			mustSet(t, s, "oauth:tokens:https://a.example", []byte(tokenJSON))
			wantValue(t, s, "oauth:tokens:https://a.example", []byte(tokenJSON))
		}},
		{"empty value", func(t *testing.T, s oauthStore) {
			mustSet(t, s, "empty", []byte{})
			wantValue(t, s, "empty", []byte{})
		}},
		{"overwrite", func(t *testing.T, s oauthStore) {
			mustSet(t, s, "k", []byte(tokenJSON))
			mustSet(t, s, "k", []byte(`{"access_token":"new"}`))
			wantValue(t, s, "k", []byte(`{"access_token":"new"}`))
			mustSet(t, s, "k", []byte(tokenJSON+" "))
			wantValue(t, s, "k", []byte(tokenJSON+" "))
		}},
		{"delete then get", func(t *testing.T, s oauthStore) {
			mustSet(t, s, "k", []byte(tokenJSON))
			if err := s.Delete("k"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			wantAbsent(t, s, "k")
		}},
		{"delete missing", func(t *testing.T, s oauthStore) {
			if err := s.Delete("never-stored"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Delete(missing) = %v, want ErrNotFound", err)
			}
		}},
		{"values are copied", func(t *testing.T, s oauthStore) {
			in := []byte(tokenJSON)
			mustSet(t, s, "k", in)
			in[0] = 'X'
			got, err := s.Get("k")
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if diff := cmp.Diff(tokenJSON, string(got)); diff != "" {
				t.Errorf("Get after changing the Set slice (-want +got):\n%s", diff)
			}
			got[0] = 'Y'
			wantValue(t, s, "k", []byte(tokenJSON))
		}},
		{"large value", func(t *testing.T, s oauthStore) {
			big := bigValue(10 << 10)
			mustSet(t, s, "big", big)
			wantValue(t, s, "big", big)
			mustSet(t, s, "big", []byte(tokenJSON))
			wantValue(t, s, "big", []byte(tokenJSON))
			bigger := bigValue(12 << 10)
			mustSet(t, s, "big", bigger)
			wantValue(t, s, "big", bigger)
			if err := s.Delete("big"); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			wantAbsent(t, s, "big")
		}},
		{"many keys", func(t *testing.T, s oauthStore) {
			const n = 40
			key := func(i int) string { return fmt.Sprintf("oauth:tokens:https://host%d.example/mcp", i) }
			val := func(i int) []byte { return fmt.Appendf(nil, `{"access_token":"token-%d"}`, i) }
			for i := range n {
				mustSet(t, s, key(i), val(i))
			}
			for i := range n {
				wantValue(t, s, key(i), val(i))
			}
			for i := range n {
				if err := s.Delete(key(i)); err != nil {
					t.Fatalf("Delete(%q): %v", key(i), err)
				}
			}
			for i := range n {
				wantAbsent(t, s, key(i))
			}
		}},
		{"concurrent", func(t *testing.T, s oauthStore) {
			const workers, rounds = 20, 4
			// Shared values are large enough to be chunked where chunking
			// happens; a reader must see one of them whole.
			shared := func(w, r int) []byte {
				return fmt.Appendf(nil, "%02d-%02d:%s", w, r, strings.Repeat(string(rune('a'+w)), 3000))
			}
			isShared := func(v []byte) bool {
				var w, r int
				if _, err := fmt.Sscanf(string(v), "%02d-%02d:", &w, &r); err != nil {
					return false
				}
				return string(shared(w, r)) == string(v)
			}
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					own := fmt.Sprintf("worker-%d", w)
					for r := range rounds {
						want := fmt.Appendf(nil, `{"worker":%d,"round":%d}`, w, r)
						if err := s.Set(own, want); err != nil {
							t.Errorf("Set(%q): %v", own, err)
							return
						}
						if got, err := s.Get(own); err != nil || string(got) != string(want) {
							t.Errorf("Get(%q) = %q, %v; want %q", own, got, err, want)
						}
						if err := s.Set("shared", shared(w, r)); err != nil {
							t.Errorf("Set(shared): %v", err)
						}
						if got, err := s.Get("shared"); err != nil || !isShared(got) {
							t.Errorf("Get(shared) = %d bytes, %v; want one whole written value", len(got), err)
						}
					}
				})
			}
			wg.Wait()
			if got, err := s.Get("shared"); err != nil || !isShared(got) {
				t.Errorf("final Get(shared) = %d bytes, %v; want one whole written value", len(got), err)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.run(t, newStore(t)) })
	}
}

func mustSet(t *testing.T, s oauthStore, key string, value []byte) {
	t.Helper()
	if err := s.Set(key, value); err != nil {
		t.Fatalf("Set(%q, %d bytes): %v", key, len(value), err)
	}
}

func wantValue(t *testing.T, s oauthStore, key string, want []byte) {
	t.Helper()
	got, err := s.Get(key)
	if err != nil {
		t.Fatalf("Get(%q): %v", key, err)
	}
	if got == nil {
		t.Errorf("Get(%q) = nil, want a non-nil slice", key)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("Get(%q) (-want +got):\n%s", key, diff)
	}
}

func wantAbsent(t *testing.T, s oauthStore, key string) {
	t.Helper()
	if got, err := s.Get(key); !errors.Is(err, ErrNotFound) || got != nil {
		t.Errorf("Get(%q) = %d bytes, %v; want nil, ErrNotFound", key, len(got), err)
	}
}

// checkKeychainInUse fails the test at cleanup if k gave up its keychain
// or logged a warning: passing the contract through the memory fallback
// would prove nothing about the keychain.
func checkKeychainInUse(t *testing.T, k *Keychain, log *logBuffer) {
	t.Cleanup(func() {
		if st := k.Status(); st.Backend == "memory" {
			t.Errorf("the keychain was given up: %s", st.Reason)
		}
		if n := log.count("level=WARN"); n != 0 {
			t.Errorf("%d warnings logged, want none:\n%s", n, log)
		}
	})
}

func TestMemoryContract(t *testing.T) {
	testStoreContract(t, func(*testing.T) oauthStore { return new(Memory) })
}

func TestKeychainContract(t *testing.T) {
	tests := []struct {
		name         string
		maxSize      int // of the fake
		maxValueSize int // of the Keychain
	}{
		{"no limit", 0, 0},
		{"chunk at 2560", 2560, 2560},
		{"chunk on ErrSetDataTooBig", 2560, 0},
		{"tiny parts", 300, 300},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testStoreContract(t, func(t *testing.T) oauthStore {
				k, log := newFakeKeychain(&fakeBackend{maxSize: tc.maxSize})
				k.MaxValueSize = tc.maxValueSize
				checkKeychainInUse(t, k, log)
				return k
			})
		})
	}
}
