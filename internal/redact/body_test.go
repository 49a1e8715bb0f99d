package redact

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

func TestJSON(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"token response",
			`{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"refresh_token":"rt-1","scope":"a b","id_token":"it-1"}`,
			`{"access_token":"` + fp("at-1") + `","token_type":"Bearer","expires_in":3600,"refresh_token":"` + fp("rt-1") + `","scope":"a b","id_token":"` + fp("it-1") + `"}`},
		{"registration keeps the endpoints",
			`{"client_id":"cid","client_secret":"cs-1","registration_access_token":"rat","token_endpoint_auth_method":"client_secret_post","redirect_uris":["http://localhost:3030/callback"]}`,
			`{"client_id":"cid","client_secret":"` + fp("cs-1") + `","registration_access_token":"` + fp("rat") + `","token_endpoint_auth_method":"client_secret_post","redirect_uris":["http://localhost:3030/callback"]}`},
		{"keys in any case, any depth",
			`{"a":{"b":[{"Access_Token":"x1"},{"c":{"CLIENT-SECRET":"x2"}}]}}`,
			`{"a":{"b":[{"Access_Token":"` + fp("x1") + `"},{"c":{"CLIENT-SECRET":"` + fp("x2") + `"}}]}}`},
		{"secret containers are redacted whole",
			`{"token":{"value":"v1","list":["v2",3]},"after":"kept"}`,
			`{"token":{"value":"` + fp("v1") + `","list":["` + fp("v2") + `",3]},"after":"kept"}`},
		{"numbers under secret names are kept",
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}`,
			`{"jsonrpc":"2.0","id":1,"error":{"code":-32603,"message":"boom"}}`},
		{"secrets inside strings",
			`{"content":[{"type":"text","text":"{\"access_token\":\"at-2\"} and code=c-2 and Bearer abcdefghij"}]}`,
			`{"content":[{"type":"text","text":"{\"access_token\":\"` + fp("at-2") + `\"} and code=` + fp("c-2") + ` and Bearer ` + fp("abcdefghij") + `"}]}`},
		{"whitespace, escapes, null and booleans",
			"{ \"state\" : \"s\\\"1\", \"n\": null, \"t\": true, \"f\": false, \"u\": \"\\u00e9<>\\n\" }",
			`{"state":"` + fp(`s"1`) + `","n":null,"t":true,"f":false,"u":"é<>\n"}`},
		{"a sequence of values", `{"code":"a"} {"code":"b"}`, `{"code":"` + fp("a") + `"}` + "\n" + `{"code":"` + fp("b") + `"}`},
		{"a top-level array", `[{"token":"t1"},"x"]`, `[{"token":"` + fp("t1") + `"},"x"]`},
		{"already redacted", `{"token":"` + fp("t") + `"}`, `{"token":"` + fp(fp("t")) + `"}`},
	}
	for _, tt := range tests {
		got, ok := JSON([]byte(tt.in))
		if !ok || string(got) != tt.want {
			t.Errorf("%s: JSON(%s) =\n  %s, %v\nwant\n  %s", tt.name, tt.in, got, ok, tt.want)
		}
		if ok && !json.Valid(got) && !strings.Contains(tt.in, "} {") {
			t.Errorf("%s: output is not valid JSON: %s", tt.name, got)
		}
	}
}

func TestJSONInvalid(t *testing.T) {
	if _, ok := JSON([]byte(`{"a":`)); ok {
		t.Error("JSON accepted a truncated document")
	}
	if _, ok := JSON([]byte(`not json`)); ok {
		t.Error("JSON accepted text")
	}
}

func TestBody(t *testing.T) {
	tests := []struct {
		name, contentType, in, want string
	}{
		{"form", "application/x-www-form-urlencoded", "grant_type=refresh_token&refresh_token=rt-9&client_id=c",
			"grant_type=refresh_token&refresh_token=" + fp("rt-9") + "&client_id=c"},
		{"json with parameters", "application/json; charset=utf-8", `{"access_token":"at-9"}`, `{"access_token":"` + fp("at-9") + `"}`},
		{"problem+json", "application/problem+json", `{"token":"t-9"}`, `{"token":"` + fp("t-9") + `"}`},
		{"json without a type", "", ` {"code":"c-9"}`, `{"code":"` + fp("c-9") + `"}`},
		{"json cut short keeps what parsed", "application/json", `{"scope":"a","access_token":"at-cut`,
			`{"scope":"a","access_token":…`},
		{"json cut inside a plain value", "application/json", `{"scope":"a","x":"plain text, code=c-8`,
			`{"scope":"a","x":` + `"plain text, code=` + fp("c-8")},
		{"json cut in a secret container", "application/json", `{"token":{"a":"x`, `{"token":{"a":…`},
		{"event stream", "text/event-stream",
			"event: message\r\nid: 1\r\ndata: {\"result\":{\"refresh_token\":\"rt-8\"}}\r\n\r\n: comment code=c-7\n\ndata: not json, token=t-7\n\ndata: {\"cut\":\"access_token=at-7",
			"event: message\r\nid: 1\r\ndata: {\"result\":{\"refresh_token\":\"" + fp("rt-8") + "\"}}\r\n\r\n: comment code=" + fp("c-7") + "\n\ndata: not json, token=" + fp("t-7") + "\n\ndata: {\"cut\":\"access_token=" + fp("at-7")},
		{"text", "text/plain", `error: code=c-6 state=s-6; "client_secret": "cs-6"`,
			`error: code=` + fp("c-6") + ` state=` + fp("s-6") + `; "client_secret": "` + fp("cs-6") + `"`},
		{"html with a link", "text/html", `<a href="http://localhost:3030/callback?code=c-5&amp;state=s-5">`,
			`<a href="http://localhost:3030/callback?code=` + fp("c-5") + `&amp;state=` + fp("s-5") + `">`},
	}
	for _, tt := range tests {
		if got := Body(tt.contentType, []byte(tt.in)); got != tt.want {
			t.Errorf("%s: Body =\n  %q\nwant\n  %q", tt.name, got, tt.want)
		}
	}
}

func TestText(t *testing.T) {
	tests := []struct{ in, want string }{
		{"nothing to see", "nothing to see"},
		{"grant_type=authorization_code&code=abc", "grant_type=authorization_code&code=" + fp("abc")},
		{"authorization_code=x", "authorization_code=x"},
		{"code_challenge=abc", "code_challenge=abc"},
		{"Authorization: Bearer eyJhbGciOi.payload.sig", "Authorization: Bearer " + fp("eyJhbGciOi.payload.sig")},
		{"Bearer short", "Bearer short"},
		{`"refresh_token" : "r\"1"`, `"refresh_token" : "` + fp(`r"1`) + `"`},
		{"token=" + fp("x"), "token=" + fp("x")},
		{"code=", "code="},
		{"x?api-key=k1", "x?api-key=" + fp("k1")},
	}
	for _, tt := range tests {
		if got := Text(tt.in); got != tt.want {
			t.Errorf("Text(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestScrub(t *testing.T) {
	got := Scrub("echo: at-0123456789 and short", "at-0123456789", "short", "")
	if want := "echo: " + fp("at-0123456789") + " and short"; got != want {
		t.Errorf("Scrub = %q, want %q", got, want)
	}
}

func TestHandler(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(NewHandler(slog.NewJSONHandler(&buf, nil)))
	u, _ := url.Parse("https://as.example/cb?code=c-4&x=1")
	log.With("access_token", "at-4").WithGroup("g").Info("msg",
		"token", "t-4", "server", "hf", "status", 401, "code", 7,
		slog.Group("req", "Authorization", "Bearer ab-12345678", "path", "/mcp"),
		"header", http.Header{"Cookie": {"sid=ck-4"}},
		"url", u,
		"form", url.Values{"refresh_token": {"rt-4"}},
		"fp", fp("already"),
	)
	var got map[string]any
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("%v: %s", err, buf.Bytes())
	}
	out := buf.String()
	for _, secret := range []string{"at-4", "t-4", "c-4", "ab-12345678", "ck-4", "rt-4"} {
		if strings.Contains(out, secret) {
			t.Errorf("log line contains %q: %s", secret, out)
		}
	}
	for _, want := range []string{fp("at-4"), fp("t-4"), fp("c-4"), fp("ab-12345678"), fp("ck-4"), fp("rt-4"),
		`"server":"hf"`, `"status":401`, `"code":7`, `"path":"/mcp"`, `"fp":"` + fp("already") + `"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log line lacks %s: %s", want, out)
		}
	}
}

func TestHandlerPassesCleanRecords(t *testing.T) {
	var buf bytes.Buffer
	h := NewHandler(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if h.Enabled(context.Background(), slog.LevelInfo) {
		t.Error("Enabled ignores the inner handler's level")
	}
	slog.New(h).Warn("plain", "server", "hf")
	if got := buf.String(); !strings.Contains(got, "msg=plain server=hf") {
		t.Errorf("got %q", got)
	}
}
