package wire

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
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
	r.update(id, Exchange{URL: "stream", Events: 3})
	want := []Exchange{{URL: "a"}, {URL: "stream", Events: 3}, {URL: "b"}}
	if diff := cmp.Diff(want, r.Recent()); diff != "" {
		t.Errorf("after closing a kept stream (-want +got):\n%s", diff)
	}

	// A stream that outlived RecentSize exchanges comes back when it closes.
	id = r.Add(Exchange{URL: "long", Open: true})
	for range RecentSize {
		r.Add(Exchange{URL: "x"})
	}
	r.update(id, Exchange{URL: "long", Events: 1})
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
	r.update(1, Exchange{})
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
				r.update(id, Exchange{Server: fmt.Sprint(g), Events: i})
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
