package oauth

import (
	"encoding/json"
	"testing"
)

// TestHardeningTokenRecordCaseFoldedKeys: encoding/json matches keys
// without case, so {"ACCESS_TOKEN":"b","access_token":"a"} reads as "a"
// and keeps "ACCESS_TOKEN":"b" as an unknown field; written back after
// access_token, it wins the next read. No writer we know produces such
// keys (fast-agent writes lower case), so this is an edge found by
// FuzzTokenRecord, kept here until record.go decides what to do.
func TestHardeningTokenRecordCaseFoldedKeys(t *testing.T) {
	var tok Token
	if err := json.Unmarshal([]byte(`{"ACCESS_TOKEN":"b","access_token":"a"}`), &tok); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	var again Token
	if err := json.Unmarshal(out, &again); err != nil {
		t.Fatal(err)
	}
	if again.AccessToken != tok.AccessToken {
		t.Errorf("a rewrite changes the access token of a record with a case-folded duplicate key: %q → %q (written %s)", tok.AccessToken, again.AccessToken, out)
	}
}
