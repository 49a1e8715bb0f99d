package oauthtest

import (
	"encoding/json"
	"io"
	"net/http"
)

// jsonrpcMessage is the part of a JSON-RPC 2.0 message the fakes look at.
type jsonrpcMessage struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id,omitempty"`
	Method  string          `json:"method,omitempty"`
	Params  json.RawMessage `json:"params,omitempty"`
}

// JSONRPCMethod returns the method of the JSON-RPC message in body, or ""
// when body is not a single JSON-RPC request or notification. It is meant
// for ResourceOptions.RequiredScopes and Unprotected.
func JSONRPCMethod(body []byte) string {
	var m jsonrpcMessage
	if json.Unmarshal(body, &m) != nil {
		return ""
	}
	return m.Method
}

// echoHandler is the default MCP endpoint: just enough of a server for a
// client to initialize and see its requests answered.
func echoHandler(path string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", "POST")
			http.Error(w, "only POST is supported", http.StatusMethodNotAllowed)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var m jsonrpcMessage
		if err := json.Unmarshal(body, &m); err != nil || m.JSONRPC != "2.0" {
			writeJSON(w, http.StatusBadRequest, map[string]any{
				"jsonrpc": "2.0", "id": nil,
				"error": map[string]any{"code": -32700, "message": "Parse error"},
			})
			return
		}
		if len(m.ID) == 0 || m.Method == "" { // a notification or a response
			w.WriteHeader(http.StatusAccepted)
			return
		}
		var result any
		switch m.Method {
		case "initialize":
			var p struct {
				ProtocolVersion string `json:"protocolVersion"`
			}
			json.Unmarshal(m.Params, &p)
			if p.ProtocolVersion == "" {
				p.ProtocolVersion = "2025-11-25"
			}
			result = map[string]any{
				"protocolVersion": p.ProtocolVersion,
				"capabilities":    map[string]any{},
				"serverInfo":      map[string]any{"name": "oauthtest", "version": "0.0.0"},
			}
		case "ping":
			result = map[string]any{}
		default:
			result = map[string]any{"method": m.Method, "params": m.Params}
		}
		writeJSON(w, http.StatusOK, map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": result})
	})
}
