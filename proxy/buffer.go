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

// get returns a buffer in the box sync.Pool keeps it in.
func (b *bufferPool) get() *[]byte {
	if p, ok := b.pool.Get().(*[]byte); ok {
		return p
	}
	buf := make([]byte, b.size)
	return &buf
}

func (b *bufferPool) put(p *[]byte) { b.pool.Put(p) }

// responseBuffers is the BufferPool of one request's ReverseProxy: it hands
// out a small buffer when ModifyResponse found an event stream answering a
// GET, and a large one otherwise.
//
// ReverseProxy gets one buffer per response and puts it back; the box it
// came in is kept until then, so that putting it back allocates nothing.
type responseBuffers struct {
	small, large *bufferPool
	stream       bool    // set by ModifyResponse
	box          *[]byte // the box of the buffer handed out
}

func (b *responseBuffers) Get() []byte {
	pool := b.large
	if b.stream {
		pool = b.small
	}
	b.box = pool.get()
	return *b.box
}

func (b *responseBuffers) Put(buf []byte) {
	pool := b.large
	if len(buf) == b.small.size {
		pool = b.small
	}
	box := b.box
	if box == nil {
		box = new([]byte)
	}
	b.box = nil
	*box = buf
	pool.put(box)
}
