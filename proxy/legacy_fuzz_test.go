package proxy

import (
	"bytes"
	"io"
	"testing"
)

// fzChunks is a reader that returns at most n bytes per Read.
type fzChunks struct {
	b []byte
	n int
}

func (r *fzChunks) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := min(len(p), r.n, len(r.b))
	copy(p, r.b[:k])
	r.b = r.b[k:]
	return k, nil
}

func (r *fzChunks) Close() error { return nil }

// fzRewrite runs stream through an endpointRewriter whose source returns
// chunk bytes at a time, reading readSize bytes at a time, and returns the
// output and the endpoint data rewrite was called with.
func fzRewrite(t *testing.T, stream []byte, chunk, readSize int, rewrite func(string) string) ([]byte, []string) {
	t.Helper()
	var calls []string
	e := newEndpointRewriter(&fzChunks{b: stream, n: chunk}, func(data string) string {
		calls = append(calls, data)
		return rewrite(data)
	})
	var out []byte
	buf := make([]byte, readSize)
	for range len(stream) + 2*len(stream)/readSize + 8 { // every Read returns at least one byte until EOF
		n, err := e.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, calls
		}
		if err != nil {
			t.Fatalf("Read: %v", err)
		}
	}
	t.Fatalf("the rewriter did not reach EOF of a %d-byte stream", len(stream))
	return nil, nil
}

// FuzzEndpointRewriter feeds arbitrary legacy SSE streams through the
// endpoint rewriter in arbitrary pieces. The output does not depend on how
// the stream is cut; with a rewrite that changes nothing it is the stream
// byte for byte; the rewrite is asked at most once, and only for a stream
// that names an endpoint event.
func FuzzEndpointRewriter(f *testing.F) {
	for _, s := range []string{
		"event: endpoint\ndata: https://up.example/m?s=1\n\nrest",
		"event: endpoint\r\ndata: https://up.example/m\r\n\r\nrest\r\n",
		"event: endpoint\rdata: https://up.example/m\r\rrest",
		"\ufeffevent:endpoint\ndata:/messages?x=1\n\n",
		": comment\n\nevent: message\ndata: {}\n\nevent: endpoint\ndata: a\ndata: b\n\n",
		"event: endpoint\n\nevent: endpoint\ndata: x\n\n",
		"data: no event name\n\n",
		"event: endpoint\ndata: unterminated",
	} {
		f.Add([]byte(s), uint8(3), uint8(5))
	}
	f.Fuzz(func(t *testing.T, stream []byte, chunk, readSize uint8) {
		c, r := int(chunk%17)+1, int(readSize%33)+1
		const local = "http://127.0.0.1:1/rewritten"
		replace := func(string) string { return local }

		whole, wholeCalls := fzRewrite(t, stream, len(stream)+1, len(stream)+64, replace)
		cut, cutCalls := fzRewrite(t, stream, c, r, replace)
		if !bytes.Equal(whole, cut) || len(wholeCalls) != len(cutCalls) {
			t.Fatalf("stream %q: read whole gives %q (%d rewrites), in pieces of %d/%d gives %q (%d rewrites)",
				stream, whole, len(wholeCalls), c, r, cut, len(cutCalls))
		}
		if len(cutCalls) > 1 {
			t.Fatalf("stream %q: rewrite asked %d times", stream, len(cutCalls))
		}
		if len(cutCalls) == 1 && !bytes.Contains(stream, []byte("endpoint")) {
			t.Fatalf("stream %q has no endpoint event but rewrite was asked for %q", stream, cutCalls[0])
		}
		same, _ := fzRewrite(t, stream, c, r, func(data string) string { return data })
		if !bytes.Equal(same, stream) {
			t.Fatalf("a rewrite that changes nothing changed %q into %q", stream, same)
		}
		if len(cutCalls) == 0 && !bytes.Equal(cut, stream) {
			t.Fatalf("no endpoint event, yet %q became %q", stream, cut)
		}
	})
}
