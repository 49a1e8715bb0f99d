// Package ssestream opens idle Server-Sent Events streams for the
// benchmarks: one GET per connection, read up to the end of the first
// event, then left open.
package ssestream

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"time"
)

// Open dials host, sends the GET request req (a complete HTTP/1.1 request
// head) and reads the response up to the end of its first event. The
// connection's deadline is ctx's while it opens and none afterwards.
func Open(ctx context.Context, host, req string) (net.Conn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	if err := readFirstEvent(c, req); err != nil {
		c.Close()
		return nil, err
	}
	c.SetDeadline(time.Time{})
	return c, nil
}

func readFirstEvent(c net.Conn, req string) error {
	if _, err := io.WriteString(c, req); err != nil {
		return err
	}
	br := bufio.NewReaderSize(c, 512)
	status, err := br.ReadString('\n')
	if err != nil {
		return err
	}
	if !strings.HasPrefix(status, "HTTP/1.1 200") {
		return fmt.Errorf("status %q", strings.TrimSpace(status))
	}
	// Headers, then the first event's lines up to a blank line. Chunked
	// framing lines come along; the blank line ending the event is what
	// counts, and the headers' blank line is skipped by counting.
	for blank := 0; blank < 2; {
		line, err := br.ReadString('\n')
		if err != nil {
			return err
		}
		if strings.TrimRight(line, "\r\n") == "" {
			blank++
		}
	}
	return nil
}
