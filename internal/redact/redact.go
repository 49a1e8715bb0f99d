// Package redact hides secrets in everything the program prints or logs.
// A secret is shown as a short fingerprint so that two lines mentioning the
// same token can be matched without revealing it.
package redact

import (
	"crypto/sha256"
	"encoding/hex"
	"net/url"
)

// Fingerprint returns "sha256:" and the first 12 hex digits of the SHA-256
// of secret, or "" for an empty secret.
func Fingerprint(secret string) string {
	if secret == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(secret))
	return "sha256:" + hex.EncodeToString(sum[:6])
}

// URL returns rawURL with any password replaced, for display. Unparsable
// input is returned as "<invalid URL>" rather than echoed.
func URL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return "<invalid URL>"
	}
	return u.Redacted()
}
