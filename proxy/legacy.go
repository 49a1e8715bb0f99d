package proxy

import (
	"bytes"
	"io"
	"strings"
)

// maxEndpointScan is how much of a legacy SSE stream is parsed while looking
// for the endpoint event; after that the stream is passed on untouched.
const maxEndpointScan = 1 << 20

// endpointRewriter passes a legacy HTTP+SSE stream through byte for byte,
// except for the data of its first "endpoint" event, which it replaces with
// rewrite(data). It parses the stream only until that event, handling the
// three SSE line endings (\n, \r\n, \r), comments and multi-line data, and
// hands each event on as soon as it is complete, so the proxy flushes event
// by event.
type endpointRewriter struct {
	src     io.ReadCloser
	rewrite func(data string) string

	out       []byte // parsed bytes not yet returned
	event     []byte // the event being read
	lineStart int    // offset in event of the current line
	afterCR   bool   // the last byte was \r: a following \n ends the same line
	scanned   int
	done      bool  // the endpoint event was seen, or scanning gave up
	err       error // src's error, returned once out is empty
}

func newEndpointRewriter(src io.ReadCloser, rewrite func(string) string) *endpointRewriter {
	return &endpointRewriter{src: src, rewrite: rewrite}
}

func (e *endpointRewriter) Read(p []byte) (int, error) {
	for len(e.out) == 0 {
		switch {
		case e.err != nil:
			return 0, e.err
		case e.done:
			return e.src.Read(p)
		case len(p) == 0:
			return 0, nil
		}
		n, err := e.src.Read(p) // p is scratch space until out is copied into it
		e.scan(p[:n])
		if err != nil {
			e.out = append(e.out, e.event...) // an unfinished event, as is
			e.event = nil
			e.err = err
		}
	}
	n := copy(p, e.out)
	e.out = e.out[n:]
	return n, nil
}

func (e *endpointRewriter) Close() error { return e.src.Close() }

// scan moves the bytes of b into out, event by event.
func (e *endpointRewriter) scan(b []byte) {
	for i, c := range b {
		if e.done {
			e.out = append(e.out, b[i:]...)
			return
		}
		e.event = append(e.event, c)
		e.scanned++
		if e.afterCR && c == '\n' { // the \n of a \r\n
			e.afterCR = false
			e.lineStart = len(e.event)
			continue
		}
		e.afterCR = c == '\r'
		switch {
		case c == '\n' || c == '\r':
			if len(e.event)-1 == e.lineStart { // a blank line ends the event
				e.endEvent()
			} else {
				e.lineStart = len(e.event)
			}
		case e.scanned >= maxEndpointScan:
			e.out = append(e.out, e.event...)
			e.event = nil
			e.done = true
		}
	}
}

// endEvent moves the complete event to out, rewriting it if it is the
// endpoint event.
func (e *endpointRewriter) endEvent() {
	ev := e.event
	e.event, e.lineStart = nil, 0
	lines := splitLines(ev)
	name, data, hasData := "message", []string(nil), false
	for _, l := range lines {
		field, value := parseField(l.text)
		switch field {
		case "event":
			name = value
		case "data":
			data, hasData = append(data, value), true
		}
	}
	if name == "endpoint" && hasData {
		e.done = true
		old := strings.Join(data, "\n")
		if nu := e.rewrite(old); nu != old {
			ev = replaceData(lines, nu)
		}
	}
	e.out = append(e.out, ev...)
}

// sseLine is one line of an event and its line ending.
type sseLine struct{ text, eol []byte }

func splitLines(b []byte) []sseLine {
	var lines []sseLine
	for len(b) > 0 {
		i := bytes.IndexAny(b, "\r\n")
		if i < 0 {
			lines = append(lines, sseLine{text: b})
			break
		}
		n := 1
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			n = 2
		}
		lines = append(lines, sseLine{text: b[:i], eol: b[i : i+n]})
		b = b[i+n:]
	}
	return lines
}

// parseField splits an SSE line into field name and value; comments and blank
// lines give an empty name.
func parseField(line []byte) (field, value string) {
	line = bytes.TrimPrefix(line, []byte("\ufeff")) // a byte order mark may open the stream
	if len(line) == 0 || line[0] == ':' {
		return "", ""
	}
	f, v, _ := bytes.Cut(line, []byte(":"))
	v = bytes.TrimPrefix(v, []byte(" "))
	return string(f), string(v)
}

// replaceData rebuilds an event with data as its only data field, in place of
// the first data line; every other line is kept.
func replaceData(lines []sseLine, data string) []byte {
	var b bytes.Buffer
	replaced := false
	for _, l := range lines {
		if f, _ := parseField(l.text); f == "data" {
			if !replaced {
				for part := range strings.SplitSeq(data, "\n") {
					b.WriteString("data: ")
					b.WriteString(part)
					b.Write(l.eol)
				}
				replaced = true
			}
			continue
		}
		b.Write(l.text)
		b.Write(l.eol)
	}
	return b.Bytes()
}
