package proxy

import (
	"bufio"
	"bytes"
	"net/http"
)

// parseResponse reads the head of the response the proxy receives all the
// time, as http.ReadResponse would: HTTP/1.1, a final status with a body,
// one Content-Length, no Transfer-Encoding, Connection, Trailer or Pragma,
// plain header lines, all of it already in br's buffer. It makes one string
// of the head and cuts names and values from it, where net/http allocates
// per line and builds a transfer reader (5 % of the proxy's CPU time with
// the rest of ReadResponse). For any other response it consumes nothing
// and reports false, and the caller uses http.ReadResponse; a fuzz test
// holds the two to the same result.
//
// The response it returns has no Body: the caller reads ContentLength
// bytes from br.
func parseResponse(br *bufio.Reader, req *http.Request) (*http.Response, bool) {
	if req.Method == http.MethodHead {
		return nil, false
	}
	if _, err := br.Peek(1); err != nil {
		return nil, false
	}
	// One pass over what is buffered finds the end of the head, counts its
	// lines and sees whether the names are canonical.
	buf, _ := br.Peek(br.Buffered())
	lines, end, canonical := 0, 0, true
	for i := 0; ; {
		j := bytes.IndexByte(buf[i:], '\n')
		if j < 1 || buf[i+j-1] != '\r' {
			return nil, false // the head is not all here, or a bare LF
		}
		if j == 1 {
			end = i // the empty line
			break
		}
		if lines > 0 && canonical {
			upper := true
			for _, c := range buf[i : i+j] {
				if c == ':' {
					break
				}
				if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
					canonical = false
				}
				upper = c == '-'
			}
		}
		lines++
		i += j + 1
	}
	const statusLine = "HTTP/1.1 "
	if lines < 2 || !bytes.HasPrefix(buf, []byte(statusLine)) {
		return nil, false
	}
	head := buf[:end] // each line with its CRLF
	lines--           // the header lines
	// Names are canonicalized in place, so the copy is made first; when
	// they are canonical already (Go and most servers), that is all.
	var s string
	if canonical {
		s = string(head)
	} else {
		b := bytes.Clone(head)
		canonicalize(b)
		s = string(b)
	}

	eol := indexCRLF(s)
	status := s[len(statusLine):eol]
	if len(status) < 3 || len(status) > 3 && status[3] != ' ' {
		return nil, false
	}
	code := 0
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return nil, false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return nil, false
	}
	for i := range len(status) {
		if status[i] < ' ' && status[i] != '\t' {
			return nil, false
		}
	}

	h := make(http.Header, lines)
	vals := make([]string, lines)
	length := int64(-1)
	for rest := s[eol+2:]; rest != ""; {
		eol := indexCRLF(rest)
		line := rest[:eol]
		rest = rest[eol+2:]
		colon := 0
		for colon < len(line) && line[colon] != ':' {
			if !isTokenByte(line[colon]) {
				return nil, false // also a folded line, or a bare CR or LF
			}
			colon++
		}
		if colon == 0 || colon == len(line) {
			return nil, false
		}
		name, v := line[:colon], line[colon+1:]
		for v != "" && (v[0] == ' ' || v[0] == '\t') {
			v = v[1:]
		}
		for v != "" && (v[len(v)-1] == ' ' || v[len(v)-1] == '\t') {
			v = v[:len(v)-1]
		}
		if !validHeaderValue(v) {
			return nil, false
		}
		switch name {
		case "Transfer-Encoding", "Connection", "Trailer", "Pragma":
			return nil, false
		case "Content-Length":
			if length >= 0 || v == "" || len(v) > 18 {
				return nil, false
			}
			length = 0
			for _, c := range []byte(v) {
				if c < '0' || c > '9' {
					return nil, false
				}
				length = length*10 + int64(c-'0')
			}
		}
		if vv := h[name]; vv != nil {
			h[name] = append(vv, v)
		} else {
			vals[0] = v
			h[name], vals = vals[:1:1], vals[1:]
		}
	}
	if length < 0 {
		return nil, false
	}
	br.Discard(end + 2)
	return &http.Response{
		Status:        status,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: length,
		Request:       req,
	}, true
}

func indexCRLF(s string) int {
	for i := 0; ; i++ {
		if s[i] == '\r' && s[i+1] == '\n' {
			return i
		}
	}
}

// canonicalize puts the header names in head (each line after the status
// line, up to its first colon) into canonical form, as net/textproto does.
// A name that is not a token is refused afterwards, changed or not.
func canonicalize(head []byte) {
	_, rest, _ := bytes.Cut(head, []byte("\r\n"))
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		name, _, _ := bytes.Cut(line, []byte(":"))
		upper := true
		for i, c := range name {
			if upper && 'a' <= c && c <= 'z' {
				name[i] = c - 'a' + 'A'
			} else if !upper && 'A' <= c && c <= 'Z' {
				name[i] = c - 'A' + 'a'
			}
			upper = c == '-'
		}
	}
}
