// Command upstream is the MCP server stand-in of the benchmarks: a plain
// net/http server with fixed answers, so that what is measured is the proxy
// in front of it.
//
//	POST any path   a fixed JSON-RPC result (401 without the bearer token
//	                given by -token, so a run proves the token was injected)
//	GET /mcp        an SSE stream: one event, then idle until the client leaves
//	                (the stream an MCP client opens on the endpoint)
//	GET /sse        the same
//	GET /events     ?n=N&interval=D: N events D apart, each carrying its send
//	                time in Unix nanoseconds
//	GET /big        ?size=N: N bytes of body, no Content-Length
//
// It prints its address ("http://127.0.0.1:PORT") on the first line of
// stdout and serves until it is killed.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// result is the answer to every POST: a small tools/call result.
const result = `{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}],"isError":false}}`

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "listen `address`")
	token := flag.String("token", "", "when set, POSTs without \"Authorization: Bearer TOKEN\" get 401")
	flag.Parse()

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("http://%s\n", ln.Addr())
	os.Stdout.Sync()

	want := "Bearer " + *token
	body := []byte(result)
	length := strconv.Itoa(len(body))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /", func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if *token != "" && r.Header.Get("Authorization") != want {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bench"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h := w.Header()
		h["Content-Type"] = []string{"application/json"}
		h["Content-Length"] = []string{length}
		w.Write(body)
	})
	idle := func(w http.ResponseWriter, r *http.Request) {
		sseHeaders(w)
		io.WriteString(w, "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/ready\"}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}
	mux.HandleFunc("GET /mcp", idle)
	mux.HandleFunc("GET /sse", idle)
	mux.HandleFunc("GET /events", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		interval, _ := time.ParseDuration(r.URL.Query().Get("interval"))
		sseHeaders(w)
		w.(http.Flusher).Flush()
		t := time.NewTicker(max(interval, time.Millisecond))
		defer t.Stop()
		for range n {
			select {
			case <-t.C:
			case <-r.Context().Done():
				return
			}
			fmt.Fprintf(w, "data: %d\n\n", time.Now().UnixNano())
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		size, _ := strconv.Atoi(r.URL.Query().Get("size"))
		w.Header().Set("Content-Type", "application/octet-stream")
		chunk := make([]byte, 64<<10)
		for i := range chunk {
			chunk[i] = byte('a' + i%26)
		}
		for size > 0 {
			n, err := w.Write(chunk[:min(size, len(chunk))])
			if err != nil {
				return
			}
			size -= n
		}
	})
	log.Fatal(http.Serve(ln, mux))
}

func sseHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	// nginx buffers proxied responses unless told not to.
	h.Set("X-Accel-Buffering", "no")
}
