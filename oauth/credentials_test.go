package oauth

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/store"
)

// credStore is a minimal in-memory Store for these tests, with an optional
// failure injected on Set of one key.
type credStore struct {
	mu         sync.Mutex
	m          map[string][]byte
	failSet    string // Set of this key fails
	failDelete string // Delete of this key fails
	failGet    string // Get of this key fails
	gets       int    // Get calls
}

func newCredStore() *credStore { return &credStore{m: map[string][]byte{}} }

func (s *credStore) Get(key string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	if key == s.failGet {
		return nil, errors.New("keychain says no")
	}
	v, ok := s.m[key]
	if !ok {
		return nil, store.ErrNotFound
	}
	return append([]byte(nil), v...), nil
}

func (s *credStore) Set(key string, value []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == s.failSet {
		return errors.New("keychain says no")
	}
	s.m[key] = append([]byte(nil), value...)
	return nil
}

func (s *credStore) Delete(key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if key == s.failDelete {
		return errors.New("keychain says no")
	}
	if _, ok := s.m[key]; !ok {
		return store.ErrNotFound
	}
	delete(s.m, key)
	return nil
}

func (s *credStore) getCalls() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gets
}

func (s *credStore) raw(key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.m[key])
}

func TestCredentialsLayout(t *testing.T) {
	st := newCredStore()
	c := &Credentials{Store: st}
	if err := c.SaveToken("https://b.example", &Token{AccessToken: "tb"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SaveClient("https://a.example", &ClientInfo{ClientID: "ca"}); err != nil {
		t.Fatal(err)
	}
	if err := c.SaveToken("https://a.example", &Token{AccessToken: "ta"}); err != nil {
		t.Fatal(err)
	}
	// fast-agent's exact key names and a sorted JSON array index.
	if got := st.raw("oauth:index"); got != `["https://a.example","https://b.example"]` {
		t.Errorf("oauth:index = %s", got)
	}
	if !strings.Contains(st.raw("oauth:tokens:https://a.example"), `"access_token":"ta"`) {
		t.Errorf("token not under oauth:tokens:<identity>: %v", st.m)
	}
	if !strings.Contains(st.raw("oauth:client_info:https://a.example"), `"client_id":"ca"`) {
		t.Errorf("client not under oauth:client_info:<identity>: %v", st.m)
	}
	ids, err := c.Identities()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"https://a.example", "https://b.example"}, ids); diff != "" {
		t.Errorf("Identities (-want +got):\n%s", diff)
	}
}

func TestCredentialsReadsLegacyIdentity(t *testing.T) {
	st := newCredStore()
	st.m["oauth:tokens:https://Example.com:443"] = []byte(`{"access_token":"legacy","token_type":"Bearer"}`)
	c := &Credentials{Store: st}
	tok, id, err := c.Token(IdentityCandidates("https://Example.com:443/mcp")...)
	if err != nil {
		t.Fatal(err)
	}
	if tok == nil || tok.AccessToken != "legacy" || id != "https://Example.com:443" {
		t.Fatalf("Token = %+v under %q, want the legacy record", tok, id)
	}
	// The canonical key wins once it exists.
	if err := c.SaveToken("https://example.com", &Token{AccessToken: "canonical"}); err != nil {
		t.Fatal(err)
	}
	tok, id, _ = c.Token(IdentityCandidates("https://Example.com:443/mcp")...)
	if tok.AccessToken != "canonical" || id != "https://example.com" {
		t.Errorf("Token = %q under %q, want the canonical record", tok.AccessToken, id)
	}
}

func TestCredentialsMissingAndCorrupt(t *testing.T) {
	st := newCredStore()
	c := &Credentials{Store: st}
	tok, id, err := c.Token("https://none.example")
	if tok != nil || id != "" || err != nil {
		t.Errorf("Token(missing) = %v, %q, %v; want nil, \"\", nil", tok, id, err)
	}
	st.m["oauth:tokens:https://bad.example"] = []byte(`garbage`)
	if _, _, err := c.Token("https://bad.example"); err == nil || !strings.Contains(err.Error(), "oauth:tokens:https://bad.example") {
		t.Errorf("Token(corrupt) error = %v, want one naming the key", err)
	}
	// A corrupt record is never deleted by reading it.
	if st.raw("oauth:tokens:https://bad.example") != "garbage" {
		t.Error("corrupt record was changed")
	}
}

func TestCredentialsForget(t *testing.T) {
	st := newCredStore()
	c := &Credentials{Store: st}
	for _, id := range []string{"https://a.example", "https://b.example"} {
		if err := c.SaveToken(id, &Token{AccessToken: "t"}); err != nil {
			t.Fatal(err)
		}
		if err := c.SaveClient(id, &ClientInfo{ClientID: "c"}); err != nil {
			t.Fatal(err)
		}
	}
	removed, err := c.Forget("https://a.example")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"oauth:tokens:https://a.example", "oauth:client_info:https://a.example"}, removed); diff != "" {
		t.Errorf("removed (-want +got):\n%s", diff)
	}
	if got := st.raw("oauth:index"); got != `["https://b.example"]` {
		t.Errorf("index after Forget = %s", got)
	}
	removed, err = c.Forget("https://a.example")
	if err != nil || len(removed) != 0 {
		t.Errorf("second Forget = %v, %v; want nothing removed", removed, err)
	}
}

func TestCredentialsIndexIsNotFatal(t *testing.T) {
	st := newCredStore()
	st.failSet = IndexKey
	var logs strings.Builder
	c := &Credentials{Store: st, Logger: newTestLogger(&logs)}
	if err := c.SaveToken("https://a.example", &Token{AccessToken: "t"}); err != nil {
		t.Fatalf("SaveToken failed because of the index: %v", err)
	}
	if !strings.Contains(logs.String(), "index") {
		t.Errorf("index failure not logged: %q", logs.String())
	}

	// An unreadable index is replaced, not kept forever.
	st.failSet = ""
	st.m[IndexKey] = []byte(`{broken`)
	if err := c.SaveToken("https://b.example", &Token{AccessToken: "t"}); err != nil {
		t.Fatal(err)
	}
	if got := st.raw(IndexKey); got != `["https://b.example"]` {
		t.Errorf("index = %s", got)
	}
}

// An index that cannot be read is left as it is by a change that adds
// nothing to it, and never written over when the store fails to return it.
func TestCredentialsUnreadableIndexKept(t *testing.T) {
	st := newCredStore()
	var logs strings.Builder
	c := &Credentials{Store: st, Logger: newTestLogger(&logs)}
	if err := c.SaveToken("https://first.example", &Token{AccessToken: "t"}); err != nil {
		t.Fatal(err)
	}
	if logs.Len() != 0 {
		t.Errorf("the first identity of a new store logged: %s", logs.String())
	}
	st.m[IndexKey] = []byte(`{broken`)
	if _, err := c.Forget("https://nothing.example"); err != nil {
		t.Errorf("Forget of nothing with a broken index: %v", err)
	}
	if got := st.raw(IndexKey); got != `{broken` {
		t.Errorf("Forget of nothing rewrote the broken index as %s", got)
	}

	st.m[IndexKey] = []byte(`["https://a.example"]`)
	st.failGet = IndexKey
	if err := c.SaveToken("https://b.example", &Token{AccessToken: "t"}); err != nil {
		t.Fatalf("SaveToken failed because of the index: %v", err)
	}
	if _, err := c.Forget("https://a.example"); err == nil {
		t.Error("Forget with an index the store cannot return reported no error")
	}
	if got := st.raw(IndexKey); got != `["https://a.example"]` {
		t.Errorf("index = %s after a failed read, want it untouched", got)
	}
}

func TestCredentialsConcurrentIndex(t *testing.T) {
	st := newCredStore()
	var wg sync.WaitGroup
	for i := range 30 {
		wg.Go(func() {
			// Separate Credentials values share the per-store index lock.
			c := &Credentials{Store: st}
			if err := c.SaveToken(fmt.Sprintf("https://%02d.example", i), &Token{AccessToken: "t"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	var ids []string
	if err := json.Unmarshal([]byte(st.raw(IndexKey)), &ids); err != nil {
		t.Fatal(err)
	}
	if len(ids) != 30 {
		t.Errorf("index has %d identities after 30 concurrent saves, want 30 (lost updates)", len(ids))
	}
}
