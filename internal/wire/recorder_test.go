package wire

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

func TestRecorderKeepsTheLast100(t *testing.T) {
	var r Recorder
	if got := r.Recent(); len(got) != 0 {
		t.Fatalf("empty Recorder: %d exchanges", len(got))
	}
	for i := range 250 {
		r.Add(Exchange{URL: fmt.Sprint(i)})
	}
	got := r.Recent()
	if len(got) != RecentSize {
		t.Fatalf("Recent returned %d exchanges, want %d", len(got), RecentSize)
	}
	for i, x := range got {
		if want := fmt.Sprint(150 + i); x.URL != want {
			t.Fatalf("Recent()[%d] = %s, want %s (oldest first)", i, x.URL, want)
		}
	}
}

func TestRecorderUpdatesOpenStreams(t *testing.T) {
	var r Recorder
	r.Add(Exchange{URL: "a"})
	id := r.Add(Exchange{URL: "stream", Open: true})
	r.Add(Exchange{URL: "b"})
	r.update(id, entry{x: Exchange{URL: "stream", Events: 3}})
	want := []Exchange{{URL: "a"}, {URL: "stream", Events: 3}, {URL: "b"}}
	if diff := cmp.Diff(want, r.Recent()); diff != "" {
		t.Errorf("after closing a kept stream (-want +got):\n%s", diff)
	}

	// A stream that outlived RecentSize exchanges comes back when it closes.
	id = r.Add(Exchange{URL: "long", Open: true})
	for range RecentSize {
		r.Add(Exchange{URL: "x"})
	}
	r.update(id, entry{x: Exchange{URL: "long", Events: 1}})
	got := r.Recent()
	if last := got[len(got)-1]; last.URL != "long" || last.Open {
		t.Errorf("the long stream's end is not the newest exchange: %+v", last)
	}
	for _, x := range got[:len(got)-1] {
		if x.URL == "long" {
			t.Error("the long stream appears twice")
		}
	}
}

func TestRecorderNil(t *testing.T) {
	var r *Recorder
	r.Add(Exchange{})
	r.update(1, entry{x: Exchange{}})
	if r.Recent() != nil {
		t.Error("a nil Recorder recorded")
	}
}

func TestRecorderConcurrent(t *testing.T) {
	var r Recorder
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				id := r.Add(Exchange{Server: fmt.Sprint(g), Open: true})
				r.update(id, entry{x: Exchange{Server: fmt.Sprint(g), Events: i}})
				if got := r.Recent(); len(got) > RecentSize {
					t.Errorf("Recent returned %d", len(got))
				}
			}
		})
	}
	wg.Wait()
	got := r.Recent()
	if len(got) != RecentSize {
		t.Fatalf("Recent returned %d exchanges, want %d", len(got), RecentSize)
	}
	for _, x := range got {
		if x.Open {
			t.Errorf("an exchange is still open: %+v", x)
		}
	}
}

func TestContextHints(t *testing.T) {
	ctx := context.Background()
	if IsReplay(ctx) || ServerFrom(ctx) != "" {
		t.Error("a bare context carries hints")
	}
	ctx = WithServer(WithReplay(ctx), "hf")
	if !IsReplay(ctx) || ServerFrom(ctx) != "hf" {
		t.Errorf("IsReplay = %v, ServerFrom = %q", IsReplay(ctx), ServerFrom(ctx))
	}
}

// With only a Recorder, a Transport holds the request's URL and the body
// its context offers by reference, and Recent redacts and parses them.
func TestRecorderOnlyHoldsByReference(t *testing.T) {
	small := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{}}`)
	large := []byte(`{"jsonrpc":"2.0","id":"big","method":"tools/call","params":{"x":"` + strings.Repeat("x", rpcPeek) + `"}}`)
	for _, tt := range []struct {
		name      string
		body      []byte
		reference bool // held without a copy
	}{
		{"small body", small, true},
		{"large body", large, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var rec Recorder
			tr := &Transport{Base: cannedTransport{}, Server: "hf", Recorder: &rec}
			req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:9/mcp?code=c-1", nil)
			req = req.WithContext(&heldBody{Context: req.Context(), body: tt.body})
			req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(tt.body)), int64(len(tt.body))
			req.Header.Set("Authorization", "Bearer at-0123456789")
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()

			rec.mu.Lock()
			e := rec.ring[rec.n%RecentSize]
			rec.mu.Unlock()
			if e.url != req.URL || e.x.URL != "" || e.x.RPCMethod != "" {
				t.Errorf("recorded URL %q, method %q, held URL %v: want them left to Recent", e.x.URL, e.x.RPCMethod, e.url)
			}
			if held := len(e.rpc) > 0 && &e.rpc[0] == &tt.body[0]; held != tt.reference || len(e.rpc) > max(len(small), rpcPeek) {
				t.Errorf("held the body by reference: %v, want %v; held %d bytes", held, tt.reference, len(e.rpc))
			}

			got := rec.Recent()
			want := []Exchange{{
				Server: "hf", Kind: KindMCP, Method: http.MethodPost,
				URL:       redact.RequestURL(req.URL),
				RPCMethod: "tools/call", RPCID: map[bool]string{true: "7", false: "big"}[tt.reference],
				Status: http.StatusOK, ReqBytes: int64(len(tt.body)), RespBytes: res.ContentLength,
				TokenFingerprint: redact.Fingerprint("at-0123456789"),
			}}
			if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Exchange{}, "Time", "Duration")); diff != "" {
				t.Errorf("Recent (-want +got):\n%s", diff)
			}
			if strings.Contains(got[0].URL, "c-1") {
				t.Errorf("URL %q shows the code", got[0].URL)
			}
			// Recent keeps what it derived.
			rec.mu.Lock()
			e = rec.ring[rec.n%RecentSize]
			rec.mu.Unlock()
			if e.url != nil || e.rpc != nil || e.x.RPCMethod != "tools/call" {
				t.Errorf("after Recent the entry still holds its URL or body: %+v", e)
			}
		})
	}
}

// Recent keeps what it derived only for the slots nobody wrote meanwhile:
// a stream that closes while Recent parses stays closed.
func TestRecentKeepsNewerWrites(t *testing.T) {
	var r Recorder
	r.add(entry{x: Exchange{URL: "a"}, rpc: []byte(`{"jsonrpc":"2.0","id":1,"method":"a"}`)})
	id := r.add(entry{x: Exchange{URL: "stream", Stream: true, Open: true}, rpc: []byte(`{"jsonrpc":"2.0","id":2,"method":"b"}`)})
	s := r.snapshot()
	r.update(id, entry{x: Exchange{URL: "stream", Stream: true, Events: 2}, rpc: []byte(`{"jsonrpc":"2.0","id":2,"method":"b"}`)})
	for j := range s.entries {
		s.entries[j].resolve()
	}
	r.keep(s)
	want := []Exchange{
		{URL: "a", RPCMethod: "a", RPCID: "1"},
		{URL: "stream", Stream: true, Events: 2, RPCMethod: "b", RPCID: "2"},
	}
	if diff := cmp.Diff(want, r.Recent()); diff != "" {
		t.Errorf("Recent after a stream closed during the parse (-want +got):\n%s", diff)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ring[1].rpc != nil {
		t.Error("the first exchange was not kept parsed")
	}
}
