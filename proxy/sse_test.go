package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/mcptest"
	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/proxy"
	"github.com/r3labs/sse/v2"
	"gopkg.in/cenkalti/backoff.v1"
)

// TestLegacyEndpointRewrite checks the endpoint event of legacy SSE streams
// as the client receives it. UP and LOCAL stand for the upstream's and the
// listener's origins.
func TestLegacyEndpointRewrite(t *testing.T) {
	const tail = "event: message\ndata: {\"jsonrpc\":\"2.0\"}\n\n"
	tests := []struct {
		name     string
		stream   string
		want     string
		wantWarn string
	}{
		{
			name:   "relative",
			stream: "event: endpoint\ndata: /messages?sessionId=abc\n\n" + tail,
			want:   "event: endpoint\ndata: /messages?sessionId=abc\n\n" + tail,
		},
		{
			name:   "absolute on the upstream origin",
			stream: "event: endpoint\ndata: UP/messages/?session_id=abc\n\n" + tail,
			want:   "event: endpoint\ndata: LOCAL/messages/?session_id=abc\n\n" + tail,
		},
		{
			name:   "comments and CRLF first",
			stream: ": ping\r\n\r\n: hi\r\nevent: endpoint\r\nid: 0\r\ndata: UP/m?s=1\r\n\r\n" + tail,
			want:   ": ping\r\n\r\n: hi\r\nevent: endpoint\r\nid: 0\r\ndata: LOCAL/m?s=1\r\n\r\n" + tail,
		},
		{
			name:   "CR line endings",
			stream: "event: endpoint\rdata: UP/m?s=1\r\r" + tail,
			want:   "event: endpoint\rdata: LOCAL/m?s=1\r\r" + tail,
		},
		{
			name:     "another origin",
			stream:   "event: endpoint\ndata: https://other.example/messages?x=1\n\n" + tail,
			want:     "event: endpoint\ndata: https://other.example/messages?x=1\n\n" + tail,
			wantWarn: "another origin",
		},
		{
			name:   "only the first endpoint event",
			stream: "event: endpoint\ndata: UP/a\n\nevent: endpoint\ndata: UP/b\n\n",
			want:   "event: endpoint\ndata: LOCAL/a\n\nevent: endpoint\ndata: UP/b\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var upURL string
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				stream := strings.ReplaceAll(tt.stream, "UP", upURL)
				w.Header().Set("Content-Length", strconv.Itoa(len(stream))) // the rewrite changes it
				io.WriteString(w, stream)
			}))
			t.Cleanup(up.Close)
			upURL = up.URL
			local, lb := serve(t, proxy.Server{Upstream: up.URL + "/sse", Transport: "sse"}, proxy.Options{})
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, local.URL+"/sse", nil)
			status, _, body := do(t, req)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			want := strings.NewReplacer("UP", up.URL, "LOCAL", local.URL).Replace(tt.want)
			if body != want {
				t.Errorf("stream:\n got %q\nwant %q", body, want)
			}
			if got := strings.Contains(lb.String(), "level=WARN"); got != (tt.wantWarn != "") || !strings.Contains(lb.String(), tt.wantWarn) {
				t.Errorf("warning logged = %v, want %q:\n%s", got, tt.wantWarn, lb)
			}
		})
	}
}

// TestSSEIndependentConsumer reads proxied streams with r3labs/sse, a
// parser that is not ours.
func TestSSEIndependentConsumer(t *testing.T) {
	stream := ": comment\n" +
		"id: 1\nevent: message\ndata: {\"a\":1}\n\n" +
		"id: 2\r\nevent: message\r\nfoo: bar\r\ndata: line 1\r\ndata: line 2\r\n\r\n" +
		"id: 3\nevent: done\ndata: bye\n\n"
	type event struct{ ID, Event, Data string }
	want := []event{
		{"1", "message", `{"a":1}`},
		{"2", "message", "line 1\nline 2"},
		{"3", "done", "bye"},
	}
	for _, transport := range []string{"http", "sse"} {
		t.Run(transport, func(t *testing.T) {
			auth := &mcptest.Authorizer{}
			up, rec := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/event-stream")
				for _, part := range strings.SplitAfter(stream, "\n\n") {
					io.WriteString(w, part)
					http.NewResponseController(w).Flush()
				}
			}), auth.Verify)
			local, _ := serve(t, proxy.Server{Upstream: up.URL + "/events", Transport: transport, Auth: auth}, proxy.Options{})

			ctx, cancel := context.WithTimeout(t.Context(), waitFor)
			defer cancel()
			c := sse.NewClient(local.URL+"/events", sse.ClientMaxBufferSize(1<<20))
			c.ReconnectStrategy = backoff.WithContext(&backoff.StopBackOff{}, ctx)
			var got []event
			err := c.SubscribeRawWithContext(ctx, func(e *sse.Event) {
				got = append(got, event{string(e.ID), string(e.Event), string(e.Data)})
				if len(got) == len(want) {
					cancel()
				}
			})
			if err != nil && ctx.Err() == nil {
				t.Fatalf("subscribe: %v", err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]int{401, 0}, statuses(rec)); diff != "" {
				t.Errorf("upstream statuses (-want +got):\n%s", diff)
			}
		})
	}
}
