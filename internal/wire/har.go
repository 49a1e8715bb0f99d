package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

// harTrailer closes the entries array, the log and the document.
const harTrailer = "\n]}}\n"

// harQueue is how many entries may wait for the writer before Transport
// waits too.
const harQueue = 4096

// harInterval is the least time between two rewrites of the file.
const harInterval = 200 * time.Millisecond

// HARWriter writes exchanges to a HAR 1.2 file (the format browser
// devtools and HTTP debuggers import) as they end. Create it with
// CreateHAR; it is safe for concurrent use.
//
// The file at the path is a complete HAR document at every moment: it can
// be opened while the proxy runs and survives any stop, kill -9 included.
// A HAR file is one JSON document, so it cannot be appended to in place:
// the closing "]}}" has to be overwritten, and the kernel may cut a write
// of several pages short when the process is killed during it (Linux
// checks for a fatal signal between pages), leaving the file truncated
// inside an entry. So every update goes to a new file next to it (the old
// content copied by copy_file_range, which is a reflink or an in-kernel
// copy, then the new entries and the closing bytes), which rename(2)
// atomically puts in place: a reader, or the file after a kill, sees the
// old or the new document, never a mix. To bound the copying, updates
// happen at most every 200 ms (and at most a fifth of the time), each
// with every entry that arrived meanwhile, so a kill loses at most the
// entries of the last moments. Close writes the rest and syncs the file.
// Entries are written by a goroutine of their own: a slow disk delays no
// response. As each update copies the whole file, a long capture should
// bound it with HAROptions.MaxSize.
type HARWriter struct {
	path     string
	header   string        // the document up to its first entry
	maxSize  int64         // HAROptions.MaxSize
	limit    int64         // owned by the writer goroutine: rotate past this size; maxSize, or more after a failed move
	logger   *slog.Logger  // HAROptions.Logger
	interval time.Duration // least time between rewrites

	mu     sync.Mutex // guards closed and sends on q
	closed bool
	q      chan harItem
	done   chan struct{} // closed when the writer goroutine ends

	// Owned by the writer goroutine.
	end     int64 // size of the file without the trailer
	entries int   // entries encoded so far

	errMu sync.Mutex
	err   error // first write error; nothing is written after it
}

type harItem struct {
	entry  *harEntry
	synced chan struct{} // a Sync marker
}

// HAROptions tunes a HARWriter. The zero value keeps every entry in one
// file.
type HAROptions struct {
	// MaxSize, if positive, bounds the file: before an update would make
	// it larger, the complete file is moved to RotatedHARPath (replacing
	// the one there) and the path starts again with an empty log. An
	// update larger than MaxSize by itself is still written whole. Where
	// the file system has no hard links, the path is missing for a moment
	// during the move. When the move fails, the file keeps growing, and
	// the move is tried again once it has grown by another MaxSize.
	MaxSize int64

	// Logger, if not nil, is told of each such move, and of failed ones.
	Logger *slog.Logger
}

// CreateHAR creates (or replaces) the HAR file at path, readable by the
// user only, with an empty log. It removes the file at RotatedHARPath,
// the part an earlier capture may have left: what is there belongs to
// this capture.
func CreateHAR(path string, o HAROptions) (*HARWriter, error) {
	head, err := json.Marshal(map[string]any{"name": "mcp-oauth-proxy", "version": version()})
	if err != nil {
		return nil, err
	}
	w := &HARWriter{
		path:     path,
		header:   `{"log":{"version":"1.2","creator":` + string(head) + `,"pages":[],"entries":[`,
		maxSize:  o.MaxSize,
		limit:    o.MaxSize,
		logger:   o.Logger,
		interval: harInterval,
		q:        make(chan harItem, harQueue),
		done:     make(chan struct{}),
	}
	if err := w.start(); err != nil {
		return nil, err
	}
	if err := os.Remove(RotatedHARPath(path)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		w.warn("cannot remove the HAR file an earlier capture left", "older", RotatedHARPath(path), "err", err)
	}
	go w.run()
	return w, nil
}

// RotatedHARPath is where a HAR file bounded by HAROptions.MaxSize keeps
// its previous part: ".1" before the extension (trace.har → trace.1.har),
// so that tools that look for .har files still open it.
func RotatedHARPath(path string) string {
	ext := filepath.Ext(path)
	if ext == "" {
		return path + ".1"
	}
	return strings.TrimSuffix(path, ext) + ".1" + ext
}

// start makes the file an empty log.
func (w *HARWriter) start() error {
	if err := w.replace(nil, []byte(w.header+harTrailer)); err != nil {
		return err
	}
	w.end = int64(len(w.header))
	return nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// add queues e for writing; it is dropped after Close.
func (w *HARWriter) add(e *harEntry) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	w.q <- harItem{entry: e}
}

// Sync writes every exchange that ended before the call to the file now,
// and returns the first write error, if any.
func (w *HARWriter) Sync() error {
	ch := make(chan struct{})
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		<-w.done
		return w.error()
	}
	w.q <- harItem{synced: ch}
	w.mu.Unlock()
	<-ch
	return w.error()
}

// Close writes the queued entries, syncs the file to disk and returns the
// first error. Exchanges that end later are not written. Calling it again
// returns the same error.
func (w *HARWriter) Close() error {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.q)
	}
	w.mu.Unlock()
	<-w.done
	return w.error()
}

func (w *HARWriter) error() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

// fail records the first error.
func (w *HARWriter) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// run encodes entries as they come and rewrites the file with them, at
// most every interval unless a Sync or Close asks for it now.
func (w *HARWriter) run() {
	defer close(w.done)
	var (
		pending bytes.Buffer // encoded entries not yet in the file
		waiters []chan struct{}
		next    time.Time // no rewrite before, unless asked
		timer   = time.NewTimer(0)
		enc     = json.NewEncoder(&pending)
	)
	enc.SetEscapeHTML(false)
	<-timer.C
	timerOn := false
	for {
		now := false
		select {
		case it, ok := <-w.q:
			if !ok {
				w.flush(&pending)
				w.syncFile()
				for _, c := range waiters {
					close(c)
				}
				return
			}
			if it.entry != nil && w.error() == nil {
				w.encode(enc, &pending, it.entry)
			}
			if it.synced != nil {
				waiters = append(waiters, it.synced)
				now = true
			}
		case <-timer.C:
			timerOn = false
		}
		if pending.Len() == 0 && len(waiters) == 0 {
			continue
		}
		if wait := time.Until(next); !now && wait > 0 {
			if !timerOn {
				timer.Reset(wait)
				timerOn = true
			}
			continue
		}
		start := time.Now()
		w.flush(&pending)
		for _, c := range waiters {
			close(c)
		}
		waiters = waiters[:0]
		next = time.Now().Add(max(w.interval, 4*time.Since(start)))
	}
}

// encode appends e to pending, after a comma unless it is the first entry.
func (w *HARWriter) encode(enc *json.Encoder, pending *bytes.Buffer, e *harEntry) {
	mark := pending.Len()
	if w.entries > 0 {
		pending.WriteByte(',')
	}
	pending.WriteByte('\n')
	if err := enc.Encode(e); err != nil {
		pending.Truncate(mark)
		w.fail(fmt.Errorf("wire: HAR entry: %w", err))
		return
	}
	pending.Truncate(pending.Len() - 1) // Encode's newline
	w.entries++
}

// flush puts the pending entries in the file.
func (w *HARWriter) flush(pending *bytes.Buffer) {
	if pending.Len() == 0 || w.error() != nil {
		pending.Reset()
		return
	}
	if w.maxSize > 0 && w.end > int64(len(w.header)) && w.end+int64(pending.Len()+len(harTrailer)) > w.limit {
		moved, err := w.rotate()
		switch {
		case err != nil && !moved:
			// The file is as it was: it keeps the entries, and grows.
			w.warn("cannot move the HAR file at its size limit; it keeps growing", "file", w.path, "err", err)
			w.limit = w.end + w.maxSize
		case err != nil:
			w.fail(err)
			pending.Reset()
			return
		default:
			w.limit = w.maxSize
			if pending.Bytes()[0] == ',' {
				pending.Next(1) // the new file's first entry follows no other
			}
		}
	}
	pending.WriteString(harTrailer)
	if err := w.replace(pending.Bytes(), nil); err != nil {
		w.fail(err)
	} else {
		w.end += int64(pending.Len() - len(harTrailer))
	}
	pending.Reset()
}

// rotate moves the complete file to RotatedHARPath and starts an empty
// one at the path; moved reports whether the file left the path. Renames
// replace the older file in one step; a hard link, where the file system
// has them, keeps a complete document at the path too until the empty
// one replaces it.
func (w *HARWriter) rotate() (moved bool, err error) {
	old := RotatedHARPath(w.path)
	link := filepath.Join(filepath.Dir(w.path), "."+filepath.Base(w.path)+".rotated.tmp")
	if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("wire: HAR file %s: %w", w.path, err)
	}
	from := link
	if os.Link(w.path, link) != nil {
		from = w.path
	}
	if err := os.Rename(from, old); err != nil {
		os.Remove(link)
		return false, fmt.Errorf("wire: HAR file %s: %w", w.path, err)
	}
	if w.logger != nil {
		w.logger.Info("the HAR file reached its size limit: moved its exchanges to the older file and started a new one",
			"file", w.path, "older", old, "max_bytes", w.maxSize)
	}
	return true, w.start()
}

func (w *HARWriter) warn(msg string, args ...any) {
	if w.logger != nil {
		w.logger.Warn(msg, args...)
	}
}

// replace atomically replaces the file by its first w.end bytes followed
// by tail, or, when fresh is not nil, by fresh.
func (w *HARWriter) replace(tail, fresh []byte) (err error) {
	dir, base := filepath.Split(w.path)
	if dir == "" {
		dir = "."
	}
	tmp, err := os.CreateTemp(dir, "."+base+".*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("wire: HAR file %s: %w", w.path, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = fmt.Errorf("wire: HAR file %s: %w", w.path, err)
		}
	}()
	if fresh != nil {
		if _, err := tmp.Write(fresh); err != nil {
			return err
		}
	} else {
		src, err := os.Open(w.path)
		if err != nil {
			return err
		}
		// os.File.ReadFrom uses copy_file_range for a limited *os.File.
		n, err := io.Copy(tmp, io.LimitReader(src, w.end))
		src.Close()
		if err != nil {
			return err
		}
		if n != w.end {
			return fmt.Errorf("the file was changed by another program (%d bytes, want %d)", n, w.end)
		}
		if _, err := tmp.Write(tail); err != nil {
			return err
		}
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), w.path)
}

// syncFile flushes the final file to disk.
func (w *HARWriter) syncFile() {
	if w.error() != nil {
		return
	}
	f, err := os.OpenFile(w.path, os.O_WRONLY, 0)
	if err != nil {
		w.fail(fmt.Errorf("wire: HAR file %s: %w", w.path, err))
		return
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		w.fail(fmt.Errorf("wire: HAR file %s: %w", w.path, err))
	}
}

// The HAR 1.2 types (http://www.softwareishard.com/blog/har-12-spec/).
// Fields starting with an underscore are custom fields, which the format
// allows.
type (
	harEntry struct {
		StartedDateTime string      `json:"startedDateTime"`
		Time            float64     `json:"time"` // ms
		Request         harRequest  `json:"request"`
		Response        harResponse `json:"response"`
		Cache           struct{}    `json:"cache"`
		Timings         harTimings  `json:"timings"`
		Comment         string      `json:"comment,omitempty"`

		Server           string `json:"_server,omitempty"`
		Kind             string `json:"_kind"`
		RPCMethod        string `json:"_rpcMethod,omitempty"`
		RPCID            string `json:"_rpcId,omitempty"`
		TokenFingerprint string `json:"_tokenFingerprint,omitempty"`
		Replay           bool   `json:"_replay,omitempty"`
		Stream           bool   `json:"_stream,omitempty"`
		Events           int    `json:"_events,omitempty"`
		Error            string `json:"_error,omitempty"`
	}
	harRequest struct {
		Method      string       `json:"method"`
		URL         string       `json:"url"`
		HTTPVersion string       `json:"httpVersion"`
		Cookies     []harCookie  `json:"cookies"`
		Headers     []harNV      `json:"headers"`
		QueryString []harNV      `json:"queryString"`
		PostData    *harPostData `json:"postData,omitempty"`
		HeadersSize int          `json:"headersSize"`
		BodySize    int64        `json:"bodySize"`
	}
	harResponse struct {
		Status      int         `json:"status"`
		StatusText  string      `json:"statusText"`
		HTTPVersion string      `json:"httpVersion"`
		Cookies     []harCookie `json:"cookies"`
		Headers     []harNV     `json:"headers"`
		Content     harContent  `json:"content"`
		RedirectURL string      `json:"redirectURL"`
		HeadersSize int         `json:"headersSize"`
		BodySize    int64       `json:"bodySize"`
	}
	harNV struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	harCookie struct {
		Name  string `json:"name"`
		Value string `json:"value"`
	}
	harPostData struct {
		MimeType string `json:"mimeType"`
		Text     string `json:"text"`
		Comment  string `json:"comment,omitempty"`
	}
	harContent struct {
		Size     int64  `json:"size"`
		MimeType string `json:"mimeType"`
		Text     string `json:"text,omitempty"`
		Comment  string `json:"comment,omitempty"`
	}
	harTimings struct {
		Send    float64 `json:"send"`
		Wait    float64 `json:"wait"`
		Receive float64 `json:"receive"`
	}
)

// newHARRequest starts an entry with what the request tells, redacted;
// the values of the secret headers are fingerprinted.
func newHARRequest(req *http.Request, secret []string) *harEntry {
	e := &harEntry{Request: harRequest{
		Method:      req.Method,
		URL:         redact.RequestURL(req.URL),
		HTTPVersion: "HTTP/1.1",
		Cookies:     harCookies(req.Cookies()),
		Headers:     harHeaders(req.Header, secret),
		QueryString: harQuery(req.URL.RawQuery),
		HeadersSize: -1,
	}}
	return e
}

// harQuery lists the query's pairs in order, decoded and redacted.
func harQuery(raw string) []harNV {
	out := []harNV{}
	for pair := range strings.SplitSeq(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		if u, err := url.QueryUnescape(k); err == nil {
			k = u
		}
		if u, err := url.QueryUnescape(v); err == nil {
			v = u
		}
		if redact.IsSecretField(k) {
			v = redact.Fingerprint(v)
		}
		out = append(out, harNV{k, v})
	}
	return out
}

// setResponse adds what the response headers tell; they are read now,
// before the caller changes them.
func (e *harEntry) setResponse(res *http.Response) {
	proto := res.Proto
	if proto == "" {
		proto = "HTTP/1.1"
	}
	e.Request.HTTPVersion = proto
	e.Response = harResponse{
		Status:      res.StatusCode,
		StatusText:  http.StatusText(res.StatusCode),
		HTTPVersion: proto,
		Cookies:     harCookies(res.Cookies()),
		Headers:     harHeaders(res.Header, nil),
		RedirectURL: redact.HeaderValue("Location", res.Header.Get("Location")),
		HeadersSize: -1,
	}
}

// finish completes the entry when the exchange ends.
func (e *harEntry) finish(x *exchange, end time.Time, reqText, reqNote, respText, respNote string) {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	wait, receive := ms(x.headers.Sub(x.start)), ms(end.Sub(x.headers))
	e.StartedDateTime = x.start.Format("2006-01-02T15:04:05.000Z07:00")
	e.Time = ms(x.headers.Sub(x.start) + end.Sub(x.headers)) // wait + receive, without float noise
	e.Timings = harTimings{Send: 0, Wait: wait, Receive: receive}
	e.Server, e.Kind, e.RPCMethod, e.RPCID = x.Server, x.Kind, x.RPCMethod, x.RPCID
	e.TokenFingerprint, e.Replay, e.Stream, e.Events, e.Error = x.TokenFingerprint, x.Replay, x.Stream, x.Events, x.Err

	e.Request.BodySize = max(x.ReqBytes, 0)
	if x.ReqBytes != 0 {
		e.Request.PostData = &harPostData{MimeType: orUnknown(x.reqType), Text: reqText, Comment: reqNote}
	}
	if e.Response.HTTPVersion == "" { // no response
		e.Response = harResponse{
			Cookies: []harCookie{}, Headers: []harNV{}, HTTPVersion: e.Request.HTTPVersion,
			HeadersSize: -1, BodySize: -1,
			Content: harContent{MimeType: "x-unknown"},
		}
		e.Comment = "no response: " + x.Err
		return
	}
	e.Response.BodySize = x.RespBytes
	e.Response.Content = harContent{Size: x.RespBytes, MimeType: orUnknown(x.respType), Text: respText, Comment: respNote}
}

func orUnknown(mimeType string) string {
	if mimeType == "" {
		return "x-unknown"
	}
	return mimeType
}

func harHeaders(h http.Header, secret []string) []harNV {
	out := make([]harNV, 0, len(h))
	for _, name := range slices.Sorted(maps.Keys(h)) {
		always := slices.ContainsFunc(secret, func(s string) bool { return strings.EqualFold(s, name) })
		for _, v := range h[name] {
			if always {
				v = redact.Fingerprint(v)
			} else {
				v = redact.HeaderValue(name, v)
			}
			out = append(out, harNV{name, v})
		}
	}
	return out
}

func harCookies(cs []*http.Cookie) []harCookie {
	out := make([]harCookie, 0, len(cs))
	for _, c := range cs {
		out = append(out, harCookie{c.Name, redact.Fingerprint(c.Value)})
	}
	return out
}
