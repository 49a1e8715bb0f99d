package proxy

import "sync"

// Sizes of the buffers response bodies are copied through. An event stream
// opened with a GET holds its buffer for as long as it is open, waiting for
// the next event, so it gets a small one (a larger event passes in several
// writes, each flushed); other responses get what ReverseProxy allocates
// without a BufferPool.
const (
	copyBufferSize   = 32 << 10
	streamBufferSize = 1 << 10
)

// bufferPool recycles copy buffers of one size. Without it every response
// allocates and zeroes a new buffer, most of the proxy's garbage for small
// JSON-RPC answers.
type bufferPool struct {
	size int
	pool sync.Pool
}

func (b *bufferPool) Get() []byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return *p
	}
	return make([]byte, b.size)
}

func (b *bufferPool) Put(buf []byte) { b.pool.Put(&buf) }

// responseBuffers is the BufferPool of one request's ReverseProxy: it hands
// out a small buffer when ModifyResponse found an event stream answering a
// GET, and a large one otherwise.
type responseBuffers struct {
	small, large *bufferPool
	stream       bool // set by ModifyResponse
}

func (b *responseBuffers) Get() []byte {
	if b.stream {
		return b.small.Get()
	}
	return b.large.Get()
}

func (b *responseBuffers) Put(buf []byte) {
	if len(buf) == b.small.size {
		b.small.Put(buf)
	} else {
		b.large.Put(buf)
	}
}
