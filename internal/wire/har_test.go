package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcp-oauth-proxy/mcp-oauth-proxy/internal/redact"
)

// The HAR 1.2 document as a reader sees it. Pointer fields are required by
// the specification (a nil one is missing from the file); the others are
// optional.
type (
	harFile struct {
		Log *struct {
			Version *string `json:"version"`
			Creator *struct {
				Name    *string `json:"name"`
				Version *string `json:"version"`
			} `json:"creator"`
			Entries *[]harFileEntry `json:"entries"`
		} `json:"log"`
	}
	harFileEntry struct {
		StartedDateTime *string          `json:"startedDateTime"`
		Time            *float64         `json:"time"`
		Request         *harFileRequest  `json:"request"`
		Response        *harFileResponse `json:"response"`
		Cache           *struct{}        `json:"cache"`
		Timings         *struct {
			Send    *float64 `json:"send"`
			Wait    *float64 `json:"wait"`
			Receive *float64 `json:"receive"`
		} `json:"timings"`

		Server           string `json:"_server"`
		Kind             string `json:"_kind"`
		RPCMethod        string `json:"_rpcMethod"`
		TokenFingerprint string `json:"_tokenFingerprint"`
		Replay           bool   `json:"_replay"`
		Stream           bool   `json:"_stream"`
		Events           int    `json:"_events"`
		Error            string `json:"_error"`
	}
	harFileRequest struct {
		Method      *string        `json:"method"`
		URL         *string        `json:"url"`
		HTTPVersion *string        `json:"httpVersion"`
		Cookies     *[]harFileNV   `json:"cookies"`
		Headers     *[]harFileNV   `json:"headers"`
		QueryString *[]harFileNV   `json:"queryString"`
		HeadersSize *int           `json:"headersSize"`
		BodySize    *int           `json:"bodySize"`
		PostData    *harFilePosted `json:"postData"` // optional: checked apart
	}
	harFilePosted struct {
		MimeType *string `json:"mimeType"`
		Text     *string `json:"text"`
		Comment  string  `json:"comment"`
	}
	harFileResponse struct {
		Status      *int         `json:"status"`
		StatusText  *string      `json:"statusText"`
		HTTPVersion *string      `json:"httpVersion"`
		Cookies     *[]harFileNV `json:"cookies"`
		Headers     *[]harFileNV `json:"headers"`
		Content     *struct {
			Size     *int    `json:"size"`
			MimeType *string `json:"mimeType"`
			Text     string  `json:"text"`
			Comment  string  `json:"comment"`
		} `json:"content"`
		RedirectURL *string `json:"redirectURL"`
		HeadersSize *int    `json:"headersSize"`
		BodySize    *int    `json:"bodySize"`
	}
	harFileNV struct {
		Name  *string `json:"name"`
		Value *string `json:"value"`
	}
)

// missing lists the nil pointer fields under v, but postData, which HAR
// makes optional.
func missing(v reflect.Value, path string) []string {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			if strings.HasSuffix(path, ".postData") {
				return nil
			}
			return []string{path}
		}
		return missing(v.Elem(), path)
	case reflect.Slice:
		var out []string
		for i := range v.Len() {
			out = append(out, missing(v.Index(i), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	case reflect.Struct:
		var out []string
		for i := range v.NumField() {
			name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("json"), ",")
			out = append(out, missing(v.Field(i), path+"."+name)...)
		}
		return out
	}
	return nil
}

// readHAR decodes the file and checks what HAR 1.2 requires.
func readHAR(t *testing.T, path string) []harFileEntry {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc harFile
	if err := json.Unmarshal(raw, &doc); err != nil {
		if len(raw) > 2000 {
			raw = append(append(raw[:1000:1000], "\n…\n"...), raw[len(raw)-1000:]...)
		}
		t.Fatalf("the HAR file does not parse: %v\n%s", err, raw)
	}
	if m := missing(reflect.ValueOf(doc), ""); len(m) > 0 {
		t.Fatalf("the HAR file lacks required fields: %v", m)
	}
	if *doc.Log.Version != "1.2" || *doc.Log.Creator.Name != "mcp-oauth-proxy" || *doc.Log.Creator.Version == "" {
		t.Errorf("log version %q, creator %q %q", *doc.Log.Version, *doc.Log.Creator.Name, *doc.Log.Creator.Version)
	}
	for i, e := range *doc.Log.Entries {
		if _, err := time.Parse(time.RFC3339Nano, *e.StartedDateTime); err != nil {
			t.Errorf("entry %d: startedDateTime: %v", i, err)
		}
		tm := e.Timings
		if *tm.Send < 0 || *tm.Wait < 0 || *tm.Receive < 0 || math.Abs(*e.Time-(*tm.Send+*tm.Wait+*tm.Receive)) > 0.01 {
			t.Errorf("entry %d: time %v, timings %v %v %v", i, *e.Time, *tm.Send, *tm.Wait, *tm.Receive)
		}
		if pd := e.Request.PostData; pd != nil && (pd.MimeType == nil || pd.Text == nil) {
			t.Errorf("entry %d: postData without mimeType or text", i)
		}
	}
	return *doc.Log.Entries
}

func TestHARFile(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Set-Cookie", "sid=cookie-secret-1; Path=/; HttpOnly")
		io.WriteString(w, `{"access_token":"at-har-123456","refresh_token":"rt-har-123456","token_type":"Bearer"}`)
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://localhost:3030/callback?code=code-har-1&state=state-har-1", http.StatusFound)
	})
	mux.HandleFunc("GET /sse", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"a\":1}\n\ndata: {\"b\":2}\n\n")
	})
	mux.HandleFunc("GET /big", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, strings.Repeat("x", 300))
	})
	up := httptest.NewServer(mux)
	defer up.Close()

	path := filepath.Join(t.TempDir(), "traffic.har")
	har, err := CreateHAR(path, HAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	tr := &Transport{Server: "hf", Kind: KindOAuth, HAR: har, MaxBody: 200}
	c := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	form := "grant_type=authorization_code&code=code-har-2&code_verifier=verifier-har-1&client_secret=cs-har-1"
	req, _ := http.NewRequest(http.MethodPost, up.URL+"/token?state=state-har-2", strings.NewReader(form))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Cookie", "sid=cookie-secret-2")
	do(t, c, req)
	req, _ = http.NewRequest(http.MethodGet, up.URL+"/authorize", nil)
	req.Header.Set("Authorization", "Bearer at-sent-123456")
	do(t, c, req)
	req, _ = http.NewRequest(http.MethodGet, up.URL+"/sse", nil)
	req.Header.Set("Accept", "text/event-stream")
	do(t, c, req)
	req, _ = http.NewRequest(http.MethodGet, up.URL+"/big", nil)
	do(t, c, req)
	tr.Base = roundTripFunc(func(*http.Request) (*http.Response, error) { return nil, errors.New("connection refused") })
	req, _ = http.NewRequest(http.MethodGet, up.URL+"/down", nil)
	if _, err := c.Do(req); err == nil {
		t.Fatal("no error")
	}
	if err := har.Close(); err != nil {
		t.Fatal(err)
	}
	if err := har.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}

	raw, _ := os.ReadFile(path)
	for _, secret := range []string{"at-har-123456", "rt-har-123456", "code-har-1", "code-har-2", "state-har-1", "state-har-2",
		"verifier-har-1", "cs-har-1", "cookie-secret-1", "cookie-secret-2", "at-sent-123456"} {
		if strings.Contains(string(raw), secret) {
			t.Errorf("the HAR file contains %s", secret)
		}
		if secret != "state-har-1" && secret != "code-har-1" && !strings.Contains(string(raw), redact.Fingerprint(secret)) {
			t.Errorf("the HAR file lacks the fingerprint of %s", secret)
		}
	}
	if info, err := os.Stat(path); err == nil && info.Mode().Perm()&0o077 != 0 {
		t.Errorf("the HAR file is readable by others: %v", info.Mode())
	}

	entries := readHAR(t, path)
	if len(entries) != 5 {
		t.Fatalf("%d entries, want 5", len(entries))
	}
	tok, redirect, sse, big, down := entries[0], entries[1], entries[2], entries[3], entries[4]
	if *tok.Request.Method != "POST" || tok.Kind != KindToken || tok.Server != "hf" || *tok.Response.Status != 200 ||
		tok.Request.PostData == nil || !strings.Contains(*tok.Request.PostData.Text, "grant_type=authorization_code") ||
		*tok.Request.BodySize != len(form) || !strings.Contains(*tok.Request.URL, "state="+redact.Fingerprint("state-har-2")) {
		t.Errorf("token entry: %+v %+v", *tok.Request, *tok.Response)
	}
	if q := *tok.Request.QueryString; len(q) != 1 || *q[0].Name != "state" || *q[0].Value != redact.Fingerprint("state-har-2") {
		t.Errorf("queryString: %v", q)
	}
	if *redirect.Response.Status != http.StatusFound || *redirect.Response.StatusText != "Found" ||
		*redirect.Response.RedirectURL != "http://localhost:3030/callback?code="+redact.Fingerprint("code-har-1")+"&state="+redact.Fingerprint("state-har-1") ||
		redirect.TokenFingerprint != redact.Fingerprint("at-sent-123456") || redirect.Kind != KindDiscovery {
		t.Errorf("redirect entry: %+v", redirect)
	}
	if !sse.Stream || sse.Events != 2 || sse.Kind != KindProbe || *sse.Response.Content.MimeType != "text/event-stream" {
		t.Errorf("stream entry: %+v", sse)
	}
	if c := big.Response.Content; *c.Size != 300 || len(c.Text) != 200 || c.Comment != "truncated: the first 200 bytes of 300 bytes are kept" ||
		*big.Response.BodySize != 300 {
		t.Errorf("large body: size %d, text %d bytes, comment %q", *c.Size, len(c.Text), c.Comment)
	}
	if *down.Response.Status != 0 || !strings.Contains(down.Error, "connection refused") {
		t.Errorf("failed exchange: %+v", down)
	}
}

// The file is a valid HAR document after every entry, while entries keep
// coming from many goroutines.
func TestHARValidAfterEveryEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), "live.har")
	w, err := CreateHAR(path, HAROptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if got := readHAR(t, path); len(got) != 0 {
		t.Fatalf("a new file has %d entries", len(got))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 15 {
				w.add(testEntry(fmt.Sprintf("g%d-%d", g, i), 100*g+i))
			}
		})
	}
	for i := range 30 {
		w.add(testEntry(fmt.Sprintf("main-%d", i), 30*i))
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		if got := len(readHAR(t, path)); got < i+1 {
			t.Fatalf("after %d synced entries the file has %d", i+1, got)
		}
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(readHAR(t, path)); got != 90 {
		t.Errorf("%d entries after Close, want 90", got)
	}
	w.add(testEntry("late", 1)) // dropped, not a panic
	if err := w.Sync(); err != nil {
		t.Errorf("Sync after Close: %v", err)
	}
}

// A file bounded by MaxSize moves to the rotated path before it would
// grow past it; both files stay valid, and between them they hold the
// latest entries in order, whether they come one by one or in batches.
func TestHARRotates(t *testing.T) {
	const maxSize = 8 << 10
	path := filepath.Join(t.TempDir(), "bounded.har")
	older := RotatedHARPath(path)
	// What an earlier capture left is not part of this one.
	if err := os.WriteFile(older, []byte("an earlier capture"), 0o600); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	w, err := CreateHAR(path, HAROptions{MaxSize: maxSize, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := os.Stat(older); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the earlier capture's older file is still there: %v", err)
	}
	next := 0
	add := func(n int) {
		for range n {
			w.add(testEntry(fmt.Sprint(next), 600))
			next++
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	for _, batch := range []int{1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 3, 4, 1, 5, 2} {
		add(batch)
		info, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if info.Size() > maxSize {
			t.Fatalf("after entry %d the file has %d bytes, want at most %d", next-1, info.Size(), maxSize)
		}
		cur := readHAR(t, path)
		if len(cur) == 0 || cur[len(cur)-1].Server != fmt.Sprint(next-1) {
			t.Fatalf("after entry %d the file ends with %v", next-1, cur)
		}
		var all []harFileEntry
		if _, err := os.Stat(older); err == nil {
			all = readHAR(t, older)
		}
		all = append(all, cur...)
		for i, e := range all {
			if want := fmt.Sprint(next - len(all) + i); e.Server != want {
				t.Fatalf("after entry %d: entry %d of both files is %q, want %q", next-1, i, e.Server, want)
			}
		}
	}
	if n := strings.Count(logged.String(), "size limit"); n < 3 {
		t.Errorf("%d rotations logged, want several:\n%s", n, logged.String())
	}
	if info, err := os.Stat(older); err != nil {
		t.Error(err)
	} else if info.Mode().Perm()&0o077 != 0 {
		t.Errorf("the older file's mode is %v, want it readable by the user only", info.Mode())
	}
	// An entry larger than the bound is still written, alone.
	w.add(testEntry("big", 3*maxSize))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if cur := readHAR(t, path); len(cur) != 1 || cur[0].Server != "big" {
		t.Errorf("after an entry larger than MaxSize the file holds %d entries", len(cur))
	}
}

// A move that fails leaves the file growing, with every entry, and is
// tried again once the file has grown by another MaxSize.
func TestHARRotationFailureKeepsWriting(t *testing.T) {
	const maxSize = 4 << 10
	path := filepath.Join(t.TempDir(), "stuck.har")
	var logged bytes.Buffer
	w, err := CreateHAR(path, HAROptions{MaxSize: maxSize, Logger: slog.New(slog.NewTextHandler(&logged, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// A directory that is not empty: no file can be renamed over it.
	blocker := filepath.Join(RotatedHARPath(path), "x")
	if err := os.MkdirAll(blocker, 0o700); err != nil {
		t.Fatal(err)
	}
	n := 0
	for ; n < 10; n++ {
		w.add(testEntry(fmt.Sprint(n), 600))
		if err := w.Sync(); err != nil {
			t.Fatalf("entry %d: %v", n, err)
		}
	}
	if got := readHAR(t, path); len(got) != n {
		t.Fatalf("%d entries in the file the move failed for, want all %d", len(got), n)
	}
	// One try per MaxSize of growth, not one per update.
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if c, most := strings.Count(logged.String(), "cannot move the HAR file"), int(info.Size()/maxSize)+1; c < 1 || c > most {
		t.Errorf("%d warnings about the failed move for a file of %d bytes, want 1 to %d:\n%s", c, info.Size(), most, logged.String())
	}
	if err := os.RemoveAll(RotatedHARPath(path)); err != nil {
		t.Fatal(err)
	}
	for ; n < 20; n++ {
		w.add(testEntry(fmt.Sprint(n), 600))
		if err := w.Sync(); err != nil {
			t.Fatalf("entry %d: %v", n, err)
		}
	}
	cur, old := readHAR(t, path), readHAR(t, RotatedHARPath(path))
	if len(cur) == 0 || len(old) == 0 || cur[len(cur)-1].Server != fmt.Sprint(n-1) {
		t.Errorf("after the blocker went: %d entries in the file, %d in the older one; want the move done and the last entry %d", len(cur), len(old), n-1)
	}
}

func TestRotatedHARPath(t *testing.T) {
	for in, want := range map[string]string{
		"trace.har":          "trace.1.har",
		"/tmp/a.b/trace.har": "/tmp/a.b/trace.1.har",
		"/tmp/a.b/trace":     "/tmp/a.b/trace.1",
		"capture.json":       "capture.1.json",
		"/var/log/proxy/cap": "/var/log/proxy/cap.1",
	} {
		if got := RotatedHARPath(in); got != want {
			t.Errorf("RotatedHARPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// testEntry is a complete entry whose response body is pad bytes long.
func testEntry(name string, pad int) *harEntry {
	x := &exchange{start: time.Now()}
	x.headers = x.start.Add(time.Millisecond)
	x.Kind, x.Server = KindMCP, name
	req, _ := http.NewRequest(http.MethodPost, "http://127.0.0.1:1/mcp?x="+name, nil)
	e := newHARRequest(req, nil)
	e.setResponse(&http.Response{StatusCode: 200, Proto: "HTTP/1.1", Header: http.Header{"Content-Type": {"text/plain"}}})
	x.RespBytes = int64(pad)
	x.respType = "text/plain"
	e.finish(x, x.headers.Add(time.Millisecond), "", "", strings.Repeat("é", pad/2), "")
	return e
}

const harChildEnv = "WIRE_TEST_HAR_CHILD"

// A HAR file parses after its writer is killed (SIGKILL) while writing.
func TestHARSurvivesKill(t *testing.T) {
	if path := os.Getenv(harChildEnv); path != "" {
		harChild(path) // never returns
	}
	if testing.Short() {
		t.Skip("starts a process")
	}
	// Rounds 0–2 kill the writer at a different size each, while it writes;
	// round 3 once its file has moved to the rotated path, while it keeps
	// rotating.
	for round := range 4 {
		path := filepath.Join(t.TempDir(), fmt.Sprintf("killed-%d.har", round))
		if round == 3 {
			path = filepath.Join(t.TempDir(), "rotating.har")
		}
		cmd := exec.Command(os.Args[0], "-test.run=^TestHARSurvivesKill$")
		cmd.Env = append(os.Environ(), harChildEnv+"="+path)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(waitFor)
		for {
			if round == 3 {
				if _, err := os.Stat(RotatedHARPath(path)); err == nil {
					time.Sleep(50 * time.Millisecond)
					break
				}
			} else if info, err := os.Stat(path); err == nil && info.Size() > int64(20000*(round+1)) {
				break
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatal("the writer process wrote nothing")
			}
			time.Sleep(time.Millisecond)
		}
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()
		if got := readHAR(t, path); len(got) == 0 && round < 3 {
			t.Errorf("round %d: no entries in the killed writer's file", round)
		}
		if round == 3 {
			if got := readHAR(t, RotatedHARPath(path)); len(got) == 0 {
				t.Error("no entries in the killed writer's rotated file")
			}
		}
	}
}

// harChild writes entries of varied sizes, up to a few pages, until it is
// killed.
func harChild(path string) {
	var o HAROptions
	if filepath.Base(path) == "rotating.har" {
		o.MaxSize = 64 << 10
	}
	w, err := CreateHAR(path, o)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	w.interval = 0 // rewrite all the time, so the kill lands in one
	for i := 0; ; i++ {
		w.add(testEntry(fmt.Sprint(i), i%3000))
	}
}
