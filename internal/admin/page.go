package admin

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"slices"
	"strings"
	"time"
)

//go:embed page.html
var pageHTML string

//go:embed static
var staticFiles embed.FS

// staticFS serves the style sheet and script at /static/….
var staticFS fs.FS = staticFiles

var pageTemplate = template.Must(template.New("page").Funcs(template.FuncMap{
	"tokenText":  tokenText,
	"clock":      func(t time.Time) string { return t.Local().Format("15:04:05") },
	"stamp":      func(t time.Time) string { return t.Local().Format("2006-01-02 15:04:05 MST") },
	"iso":        func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"duration":   durationText,
	"exchangeOK": func(x Exchange) bool { return x.Err == "" && x.Status > 0 && x.Status < 400 },
	"notes":      exchangeNotes,
}).Parse(pageHTML))

// messages are the fixed notices a finished action redirects to (?done=…):
// a notice is never taken from the URL, so a link cannot put words on
// the page.
var messages = map[string]string{
	"logout":   "Logged out: the token and client registration are forgotten. The next request to the server starts a new login.",
	"callback": "Callback accepted: the login is finishing, the token appears below in a moment.",
}

// pageData is what the template renders.
type pageData struct {
	Status
	Recent []Exchange // newest first
	Notice string
	Error  string
}

func (h *handler) servePage(w http.ResponseWriter, r *http.Request) {
	h.render(w, http.StatusOK, messages[r.URL.Query().Get("done")], "")
}

// render writes the page with a notice or an error on top.
func (h *handler) render(w http.ResponseWriter, code int, notice, errText string) {
	d := pageData{Status: h.status(), Notice: notice, Error: errText}
	d.Recent = slices.Clone(d.Exchanges)
	slices.Reverse(d.Recent)
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, d); err != nil {
		h.log.Error("admin: rendering the status page", "err", err)
		http.Error(w, "mcp-oauth-proxy: cannot render the status page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	w.Write(b.Bytes())
}

// tokenText is the one-line state of a token: "none", "valid, expires in
// 59m (at …)", "expired 3m ago", with the scope.
func tokenText(s TokenStatus, now time.Time) string {
	if !s.Present {
		return "none"
	}
	var text string
	switch {
	case s.ExpiresAt == nil:
		text = "valid, expiry unknown"
	case s.Expired:
		text = "expired " + HumanDuration(now.Sub(*s.ExpiresAt)) + " ago"
		if s.RefreshToken {
			text += " (it is refreshed on the next request)"
		}
	default:
		text = fmt.Sprintf("valid, expires in %s (at %s)", HumanDuration(s.ExpiresAt.Sub(now)),
			s.ExpiresAt.Local().Format("2006-01-02 15:04:05 MST"))
	}
	if s.Scope != "" {
		text += ", scope: " + s.Scope
	}
	return text
}

// humanDuration rounds d to its two largest units: 45s, 59m, 1h5m, 3d4h.
func HumanDuration(d time.Duration) string {
	d = max(d, 0)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h, m := int(d/time.Hour), int(d%time.Hour/time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m)
	default:
		days, h := int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour)
		if h == 0 {
			return fmt.Sprintf("%dd", days)
		}
		return fmt.Sprintf("%dd%dh", days, h)
	}
}

// durationText shows milliseconds below ten seconds, else seconds.
func durationText(ms float64) string {
	if ms < 10 {
		return fmt.Sprintf("%.1f ms", ms)
	}
	if ms < 10_000 {
		return fmt.Sprintf("%.0f ms", ms)
	}
	return fmt.Sprintf("%.1f s", ms/1000)
}

// exchangeNotes is the Notes column: replay, stream and error.
func exchangeNotes(x Exchange) string {
	var notes []string
	if x.Replay {
		notes = append(notes, "replayed after login")
	}
	switch {
	case x.Open:
		notes = append(notes, fmt.Sprintf("stream open, %d events so far", x.Events))
	case x.Stream:
		notes = append(notes, fmt.Sprintf("stream, %d events", x.Events))
	}
	if x.Err != "" {
		notes = append(notes, x.Err)
	}
	return strings.Join(notes, "; ")
}
