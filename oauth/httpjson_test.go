package oauth

import (
	"net/http"
	"strings"
	"testing"
)

func TestIsJSONType(t *testing.T) {
	for _, tt := range []struct {
		ct   string
		want bool
	}{
		{"", true},
		{"application/json", true},
		{"Application/JSON; charset=utf-8", true},
		{"application/problem+json", true},
		{"application/jrd+json", true},
		{"text/json", true},
		{"text/html", false},
		{"text/plain", false},
		{"application/x-www-form-urlencoded", false},
		{"application/jsonp", false},
		{";;;", false},
	} {
		if got := isJSONType(tt.ct); got != tt.want {
			t.Errorf("isJSONType(%q) = %v, want %v", tt.ct, got, tt.want)
		}
	}
}

func TestFetchBodyLimit(t *testing.T) {
	site := newFakeSite(t)
	site.json("/exact", 200, `"`+strings.Repeat("x", maxJSONBody-2)+`"`)
	site.json("/over", 200, `"`+strings.Repeat("x", maxJSONBody-1)+`"`)
	client := noFollowClient(nil)

	res, err := getJSON(t.Context(), client, site.URL()+"/exact", nil)
	if err != nil {
		t.Fatalf("body of exactly 1 MiB: %v", err)
	}
	if len(res.Body) != maxJSONBody {
		t.Errorf("read %d bytes, want %d", len(res.Body), maxJSONBody)
	}
	if _, err := getJSON(t.Context(), client, site.URL()+"/over", nil); err == nil ||
		!strings.Contains(err.Error(), site.URL()+"/over") || !strings.Contains(err.Error(), "larger than 1 MiB") {
		t.Errorf("body of 1 MiB + 1 = %v, want an error naming the URL", err)
	}
}

func TestFetchDoesNotFollowRedirects(t *testing.T) {
	site := newFakeSite(t)
	site.handle("/from", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/to", http.StatusFound)
	})
	site.trap("/to", "redirect followed")
	res, err := getJSON(t.Context(), noFollowClient(&http.Client{}), site.URL()+"/from", nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusFound {
		t.Errorf("status = %d, want 302", res.StatusCode)
	}
}

func TestFetchSendsAcceptJSON(t *testing.T) {
	site := newFakeSite(t)
	if _, err := postJSON(t.Context(), noFollowClient(nil), site.URL()+"/x", nil, map[string]string{"a": "b"}); err != nil {
		t.Fatal(err)
	}
	h := site.headers()[0]
	if h.Get("Accept") != "application/json" || h.Get("Content-Type") != "application/json" {
		t.Errorf("Accept %q, Content-Type %q; want application/json for both", h.Get("Accept"), h.Get("Content-Type"))
	}
}

func TestDecode(t *testing.T) {
	for _, tt := range []struct {
		ct, body, wantErr string
	}{
		{"application/json", `{"a": 1}`, ""},
		{"", ` {"a": 1}`, ""},
		{"text/html", `<html>`, `content type "text/html"`},
		{"application/json", `[1]`, "not a JSON object"},
		{"application/json", ``, "not a JSON object"},
		{"application/json", `{"a": `, "invalid JSON"},
	} {
		r := &jsonResponse{URL: "https://h/x", Header: http.Header{"Content-Type": {tt.ct}}, Body: []byte(tt.body)}
		var v map[string]any
		err := r.decode(&v)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("decode(%q, %q) = %v", tt.ct, tt.body, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "https://h/x")):
			t.Errorf("decode(%q, %q) = %v, want an error naming the URL with %q", tt.ct, tt.body, err, tt.wantErr)
		}
	}
}
