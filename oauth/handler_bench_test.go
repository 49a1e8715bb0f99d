package oauth

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// countingStore counts reads, to show that the request path reads no
// keychain.
type countingStore struct {
	*credStore
	gets atomic.Int64
}

func (s *countingStore) Get(key string) ([]byte, error) {
	s.gets.Add(1)
	return s.credStore.Get(key)
}

// BenchmarkHandlerToken measures Token, which the proxy calls for every
// request, from many goroutines at once: with a token that needs nothing,
// and with one inside the refresh margin whose refresh fails and backs off
// (the path that takes the identity's lock briefly).
func BenchmarkHandlerToken(b *testing.B) {
	tests := []struct {
		name    string
		expires time.Duration // from now; 0 for no known expiry
		refresh string
	}{
		{name: "valid"},
		{name: "within refresh margin", expires: 30 * time.Second, refresh: "rt"},
	}
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			st := &countingStore{credStore: newCredStore()}
			const url = "http://127.0.0.1:1/mcp" // nothing listens: refreshes fail fast
			tok := &Token{AccessToken: "at", RefreshToken: tt.refresh}
			if tt.expires != 0 {
				tok.ExpiresAt = time.Now().Add(tt.expires)
			}
			if err := (&Credentials{Store: st}).SaveToken(Identity(url), tok); err != nil {
				b.Fatal(err)
			}
			e := &Engine{}
			b.Cleanup(e.Close)
			h := e.Handler(Server{URL: url, Store: st})
			ctx := context.Background()
			if got, err := h.Token(ctx); got != "at" || err != nil {
				b.Fatalf("Token = %q, %v", got, err)
			}
			reads := st.gets.Load()
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if got, _ := h.Token(ctx); got != "at" {
						b.Errorf("Token = %q", got)
						return
					}
				}
			})
			b.StopTimer()
			if n := st.gets.Load() - reads; n != 0 {
				b.Errorf("Token read the store %d times", n)
			}
		})
	}
}
