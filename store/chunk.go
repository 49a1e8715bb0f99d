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
	chunkHeaderV1 = chunkPrefix + "v1:"        // parts from index 0
	chunkHeaderV2 = chunkPrefix + "v2:"        // parts from a start index
	maxParts      = 4096
	maxStart      = 2 * maxParts // see nextStart
	minChunkSize  = 256          // below this, halving the part size stops
)

// partKey is the key of part i of a chunked value stored under key.
func partKey(key string, i int) string { return key + "#" + strconv.Itoa(i) }

// chunkSpan is what a chunk header says: the value is in parts
// start … start+parts-1, and sum is the hex SHA-256 of the whole value.
// The zero chunkSpan stands for a value that is not chunked.
type chunkSpan struct {
	start, parts int
	sum          string
}

func (c chunkSpan) end() int { return c.start + c.parts }

// nextStart returns where the parts of a new value of n parts go when old
// is stored: never over old's parts, so that the old value stays whole
// until the new header replaces its header. Index 0 when that fits below
// old, else just past it; a start so stays below maxStart.
func nextStart(old chunkSpan, n int) int {
	if old.parts == 0 || n <= old.start {
		return 0
	}
	return old.end()
}

// chunkHeader is the entry stored under the key of a chunked value whose
// parts start at start. It has the v1 form, which earlier versions read,
// when start is 0.
func chunkHeader(start, parts int, value []byte) string {
	sum := sha256.Sum256(value)
	if start == 0 {
		return chunkHeaderV1 + strconv.Itoa(parts) + ":" + hex.EncodeToString(sum[:])
	}
	return chunkHeaderV2 + strconv.Itoa(start) + ":" + strconv.Itoa(parts) + ":" + hex.EncodeToString(sum[:])
}

// parseChunkHeader reports whether s is a chunk header and, if it is one
// this version understands, what it says.
func parseChunkHeader(s string) (span chunkSpan, chunked bool, err error) {
	if !strings.HasPrefix(s, chunkPrefix) {
		return chunkSpan{}, false, nil
	}
	malformed := errors.New("malformed chunk header")
	var fields []string
	if rest, ok := strings.CutPrefix(s, chunkHeaderV1); ok {
		fields = append([]string{"0"}, strings.Split(rest, ":")...)
	} else if rest, ok := strings.CutPrefix(s, chunkHeaderV2); ok {
		fields = strings.Split(rest, ":")
	} else {
		return chunkSpan{}, true, errors.New("unknown chunk header version")
	}
	if len(fields) != 3 {
		return chunkSpan{}, true, malformed
	}
	start, serr := strconv.Atoi(fields[0])
	parts, perr := strconv.Atoi(fields[1])
	if serr != nil || perr != nil || start < 0 || start > maxStart || parts < 1 || parts > maxParts {
		return chunkSpan{}, true, malformed
	}
	if b, err := hex.DecodeString(fields[2]); err != nil || len(b) != sha256.Size {
		return chunkSpan{}, true, malformed
	}
	return chunkSpan{start: start, parts: parts, sum: strings.ToLower(fields[2])}, true, nil
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
