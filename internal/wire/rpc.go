package wire

import (
	"bytes"
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// parseRPC returns the method and id of the JSON-RPC request, notification
// or response in body; for a batch, those of its messages joined by
// commas. It reads only as far as it needs, so a body cut short still
// gives the fields found before the cut, and returns "" for what is not
// there or not JSON.
func parseRPC(body []byte) (method, id string) {
	b := bytes.TrimLeft(body, " \t\r\n")
	if len(b) == 0 || b[0] != '{' && b[0] != '[' {
		return "", ""
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if b[0] == '{' {
		return rpcMessage(dec)
	}
	if _, err := dec.Token(); err != nil { // [
		return "", ""
	}
	var methods, ids []string
	for dec.More() {
		if t, err := dec.Token(); err != nil || t != json.Delim('{') {
			break
		}
		m, i := rpcFields(dec)
		if m == "" && i == "" {
			break
		}
		methods, ids = append(methods, m), append(ids, i)
	}
	return joinNonEmpty(methods), joinNonEmpty(ids)
}

func rpcMessage(dec *json.Decoder) (method, id string) {
	if _, err := dec.Token(); err != nil { // {
		return "", ""
	}
	return rpcFields(dec)
}

// rpcFields reads the members of an object whose { has been read, up to
// its }, and returns its method and id.
func rpcFields(dec *json.Decoder) (method, id string) {
	isRPC := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		switch key {
		case "jsonrpc":
			isRPC = true
		case "method":
			json.Unmarshal(raw, &method)
		case "id":
			id = rpcID(raw)
		}
	}
	dec.Token() // }
	if !isRPC {
		return "", ""
	}
	return method, id
}

// rpcID renders an id: a number as written, a string unquoted, null as "".
func rpcID(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	if string(raw) == "null" || len(raw) > 64 {
		return ""
	}
	return string(raw)
}

func joinNonEmpty(s []string) string {
	for _, v := range s {
		if v != "" {
			return strings.Join(s, ",")
		}
	}
	return ""
}

// oauthKind tells the OAuth engine's requests apart by what they look
// like: a form POST is a token request (a refresh when its grant says so),
// a JSON-RPC POST, a stream GET or any other method is a probe of the MCP
// server, another JSON POST a registration, and any other GET discovery.
func oauthKind(req *http.Request, contentType string, body []byte) string {
	switch req.Method {
	case http.MethodGet, http.MethodHead:
		if strings.Contains(req.Header.Get("Accept"), "text/event-stream") {
			return KindProbe
		}
		return KindDiscovery
	case http.MethodPost:
	default:
		return KindProbe
	}
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
		form, _ := url.ParseQuery(string(body))
		if form.Get("grant_type") == "refresh_token" {
			return KindRefresh
		}
		return KindToken
	}
	if m, id := parseRPC(body); m != "" || id != "" {
		return KindProbe
	}
	return KindRegister
}
