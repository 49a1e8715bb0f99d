package oauthtest

import (
	"context"
	"fmt"
	"strings"
	"sync"
)

// Buffer is an io.Writer that is safe for concurrent use and can be
// waited on, for output (e.g. a proxy's stderr) that another goroutine is
// still writing. The zero value is an empty buffer ready to use.
type Buffer struct {
	mu    sync.Mutex
	b     []byte
	wake  chan struct{} // closed by the next Write
	links int           // links handed out by NextLink
}

// Write appends p and wakes the waiters.
func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	if b.wake != nil {
		close(b.wake)
		b.wake = nil
	}
	return len(p), nil
}

// String returns everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}

// snapshotLocked returns the text and a channel closed by the next Write.
func (b *Buffer) snapshotLocked() (string, <-chan struct{}) {
	if b.wake == nil {
		b.wake = make(chan struct{})
	}
	return string(b.b), b.wake
}

// WaitFor waits until cond holds for everything written so far, and
// returns that text. When ctx ends first, the error includes the text.
// Give ctx a deadline: a test should fail, not hang.
func (b *Buffer) WaitFor(ctx context.Context, cond func(text string) bool) (string, error) {
	for {
		b.mu.Lock()
		text, wake := b.snapshotLocked()
		b.mu.Unlock()
		if cond(text) {
			return text, nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return text, fmt.Errorf("oauthtest: %w while waiting for output; got so far:\n%s", context.Cause(ctx), text)
		}
	}
}

// NextLink waits for a login link (see Links) after the ones earlier
// calls returned, and returns it: the first call returns the first link,
// the second call the second one, and so on. Only complete lines count,
// so a link being written is not returned cut short.
func (b *Buffer) NextLink(ctx context.Context) (string, error) {
	for {
		b.mu.Lock()
		text, wake := b.snapshotLocked()
		if links := Links(text[:strings.LastIndexByte(text, '\n')+1]); len(links) > b.links {
			link := links[b.links]
			b.links++
			b.mu.Unlock()
			return link, nil
		}
		n := b.links
		b.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return "", fmt.Errorf("oauthtest: %w while waiting for login link #%d; got so far:\n%s", context.Cause(ctx), n+1, text)
		}
	}
}
