package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// codeInternalError is the JSON-RPC 2.0 "Internal error" code, used for every
// error the proxy answers itself.
const codeInternalError = -32603

// rpcError is a JSON-RPC 2.0 error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   rpcErrorBody    `json:"error"`
}

type rpcErrorBody struct {
	Code    int           `json:"code"`
	Message string        `json:"message"`
	Data    *rpcErrorData `json:"data,omitempty"`
}

type rpcErrorData struct {
	LoginURL string `json:"loginURL,omitempty"`
}

// writeRPCError answers with a JSON-RPC error carrying msg, so MCP clients
// show the reason. id is the request's id (nil for none); loginURL, when set,
// is also given in the error's data.
func writeRPCError(w http.ResponseWriter, status int, id json.RawMessage, msg, loginURL string) {
	if id == nil {
		id = json.RawMessage("null")
	}
	e := rpcError{JSONRPC: "2.0", ID: id, Error: rpcErrorBody{Code: codeInternalError, Message: msg}}
	if loginURL != "" {
		e.Error.Data = &rpcErrorData{LoginURL: loginURL}
	}
	b, err := json.Marshal(e)
	if err != nil { // id came from a request body that parsed as JSON
		e.ID = json.RawMessage("null")
		b, _ = json.Marshal(e)
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Del("Content-Length")
	w.WriteHeader(status)
	w.Write(append(b, '\n'))
}

// requestID returns the id of the JSON-RPC request in body, or nil when body
// is not a single request with an id (a notification, a batch, not JSON).
func requestID(body []byte) json.RawMessage {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil
	}
	var msg struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(body, &msg) != nil || len(msg.ID) == 0 {
		return nil
	}
	switch msg.ID[0] { // JSON-RPC ids are strings, numbers or null
	case '"', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'n':
		return msg.ID
	}
	return nil
}
