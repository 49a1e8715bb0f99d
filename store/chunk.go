package store

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Chunk layout; see the Keychain documentation.
const (
	chunkPrefix   = "mcp-oauth-proxy-chunked:" // never valid JSON
	chunkHeaderV1 = chunkPrefix + "v1:"
	maxParts      = 4096
	minChunkSize  = 256 // below this, halving the part size stops
)

// partKey is the key of part i of a chunked value stored under key.
func partKey(key string, i int) string { return key + "#" + strconv.Itoa(i) }

// chunkHeader is the entry stored under the key of a chunked value.
func chunkHeader(parts int, value []byte) string {
	sum := sha256.Sum256(value)
	return chunkHeaderV1 + strconv.Itoa(parts) + ":" + hex.EncodeToString(sum[:])
}

// parseChunkHeader reports whether s is a chunk header and, if it is one
// this version understands, the number of parts and the hex SHA-256 of the
// whole value.
func parseChunkHeader(s string) (parts int, sum string, chunked bool, err error) {
	if !strings.HasPrefix(s, chunkPrefix) {
		return 0, "", false, nil
	}
	rest, ok := strings.CutPrefix(s, chunkHeaderV1)
	if !ok {
		return 0, "", true, errors.New("unknown chunk header version")
	}
	n, sum, ok := strings.Cut(rest, ":")
	parts, err = strconv.Atoi(n)
	if !ok || err != nil || parts < 1 || parts > maxParts {
		return 0, "", true, errors.New("malformed chunk header")
	}
	if b, err := hex.DecodeString(sum); err != nil || len(b) != sha256.Size {
		return 0, "", true, errors.New("malformed chunk header")
	}
	return parts, strings.ToLower(sum), true, nil
}

// verifyChunks checks a reassembled value against the header's hash.
func verifyChunks(value []byte, sum string) error {
	got := sha256.Sum256(value)
	if hex.EncodeToString(got[:]) != sum {
		return fmt.Errorf("reassembled value does not match its SHA-256")
	}
	return nil
}

// splitChunks cuts value into parts of at most size bytes, at UTF-8
// character boundaries where possible, so that every part is valid text.
func splitChunks(value []byte, size int) []string {
	var parts []string
	for len(value) > size {
		cut := size
		for cut > 0 && !utf8.RuneStart(value[cut]) {
			cut--
		}
		if cut == 0 {
			cut = size
		}
		parts = append(parts, string(value[:cut]))
		value = value[cut:]
	}
	return append(parts, string(value))
}
