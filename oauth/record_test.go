package oauth

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestTokenReadsFastAgentRecord(t *testing.T) {
	// What fast-agent (python-sdk model_dump_json) writes: nulls included, no expires_at.
	const fastAgent = `{"access_token":"at-1","token_type":"Bearer","expires_in":3600,"scope":null,"refresh_token":"rt-1","id_token":null}`
	var tok Token
	if err := json.Unmarshal([]byte(fastAgent), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.AccessToken != "at-1" || tok.RefreshToken != "rt-1" || tok.ExpiresIn != 3600 || tok.Scope != "" || !tok.ExpiresAt.IsZero() {
		t.Errorf("decoded %+v", tok)
	}
	if tok.ExpiresWithin(time.Now(), time.Hour) {
		t.Error("a token without a known expiry must not count as expiring")
	}
	b, err := json.Marshal(tok)
	if err != nil {
		t.Fatal(err)
	}
	// The unknown id_token field survives the rewrite.
	if !strings.Contains(string(b), `"id_token":null`) {
		t.Errorf("rewrite lost an unknown field: %s", b)
	}
}

func TestTokenRoundTrip(t *testing.T) {
	at := time.Unix(1_800_000_000, 0)
	in := Token{AccessToken: "a", TokenType: "bearer", ExpiresIn: 60, RefreshToken: "r", Scope: "x y", ExpiresAt: at}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"access_token":"a","token_type":"Bearer","expires_in":60,"scope":"x y","refresh_token":"r","expires_at":1800000000}`
	if string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
	var out Token
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	in.TokenType = "Bearer"
	if diff := cmp.Diff(in, out, cmp.AllowUnexported(Token{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	if got := out.Scopes(); !cmp.Equal(got, []string{"x", "y"}) {
		t.Errorf("Scopes = %q", got)
	}
}

func TestTokenAbsentFieldsAreNull(t *testing.T) {
	b, err := json.Marshal(Token{AccessToken: "a"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"access_token":"a","token_type":"Bearer","expires_in":null,"scope":null,"refresh_token":null}`
	if string(b) != want {
		t.Errorf("Marshal = %s, want %s", b, want)
	}
}

func TestTokenExpiresAtForms(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
	}{
		{`{"access_token":"a","expires_at":1800000000}`, time.Unix(1_800_000_000, 0)},
		{`{"access_token":"a","expires_at":1800000000.5}`, time.Unix(1_800_000_000, 5e8)},
		{`{"access_token":"a","expires_at":"2027-01-15T08:00:00Z"}`, time.Date(2027, 1, 15, 8, 0, 0, 0, time.UTC)},
		{`{"access_token":"a","expires_at":null}`, time.Time{}},
		{`{"access_token":"a","expires_in":"3600"}`, time.Time{}},
		{`{"access_token":"a","expires_at":253402300799}`, time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)},
		{`{"access_token":"a","expires_at":-62135596800}`, time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range tests {
		var tok Token
		if err := json.Unmarshal([]byte(tt.in), &tok); err != nil {
			t.Errorf("Unmarshal(%s): %v", tt.in, err)
			continue
		}
		if !tok.ExpiresAt.Equal(tt.want) {
			t.Errorf("Unmarshal(%s).ExpiresAt = %v, want %v", tt.in, tok.ExpiresAt, tt.want)
		}
	}
}

func TestTokenReadsLargeIntegersExactly(t *testing.T) {
	// Above 2^53 a float64 would round these.
	const in = `{"access_token":"a","expires_in":9007199254740993,"expires_at":253402300799}`
	var tok Token
	if err := json.Unmarshal([]byte(in), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.ExpiresIn != 9007199254740993 || tok.ExpiresAt.Unix() != 253402300799 {
		t.Errorf("Unmarshal(%s) = expires_in %d, expires_at %d", in, tok.ExpiresIn, tok.ExpiresAt.Unix())
	}
}

func TestTokenRejectsBadRecords(t *testing.T) {
	for _, in := range []string{
		`not json`,
		`[]`,
		`{}`,
		`{"access_token":""}`,
		`{"access_token":null}`,
		`{"access_token":"a","expires_at":"yesterday"}`,
		`{"access_token":"a","expires_in":{}}`,
		// Out of the range a time can be written back in (found by FuzzTokenRecord).
		`{"access_token":"0","expires_at":1E20}`,
		`{"access_token":"a","expires_at":253402300800}`,
		`{"access_token":"a","expires_at":-62135596801.5}`,
		`{"access_token":"a","expires_at":9223372036854775807}`,
		`{"access_token":"a","expires_in":1e20}`,
		`{"access_token":"a","expires_in":-1e19}`,
	} {
		var tok Token
		err := json.Unmarshal([]byte(in), &tok)
		if err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want error", in)
			continue
		}
		// encoding/json reports syntax errors itself, before UnmarshalJSON runs.
		if json.Valid([]byte(in)) && !strings.Contains(err.Error(), "oauth: token record") {
			t.Errorf("Unmarshal(%s) error %q lacks the oauth: token record prefix", in, err)
		}
	}
}

func TestExpiresWithin(t *testing.T) {
	now := time.Unix(1000, 0)
	tok := Token{AccessToken: "a", ExpiresAt: now.Add(30 * time.Second)}
	if !tok.ExpiresWithin(now, time.Minute) {
		t.Error("expiring in 30s should be within 1m")
	}
	if tok.ExpiresWithin(now, 10*time.Second) {
		t.Error("expiring in 30s should not be within 10s")
	}
}

func TestClientInfoReadsFastAgentRecord(t *testing.T) {
	// python-sdk 2.0 OAuthClientInformationFull, nulls included.
	const fastAgent = `{"response_types":["code"],"scope":null,"client_name":"fast-agent","client_uri":null,"logo_uri":null,"contacts":null,"tos_uri":null,"policy_uri":null,"jwks_uri":null,"jwks":null,"software_id":null,"software_version":null,"redirect_uris":["http://127.0.0.1:3030/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"application_type":"native","client_id":"cid","client_secret":null,"client_id_issued_at":1700000000,"client_secret_expires_at":null,"issuer":"https://as.example"}`
	var ci ClientInfo
	if err := json.Unmarshal([]byte(fastAgent), &ci); err != nil {
		t.Fatal(err)
	}
	want := ClientInfo{
		ClientID:                "cid",
		ClientIDIssuedAt:        1700000000,
		ClientName:              "fast-agent",
		RedirectURIs:            []string{"http://127.0.0.1:3030/callback"},
		GrantTypes:              []string{"authorization_code", "refresh_token"},
		ResponseTypes:           []string{"code"},
		TokenEndpointAuthMethod: "none",
		Issuer:                  "https://as.example",
	}
	if diff := cmp.Diff(want, ci, cmpopts()); diff != "" {
		t.Errorf("decoded (-want +got):\n%s", diff)
	}
	b, err := json.Marshal(ci)
	if err != nil {
		t.Fatal(err)
	}
	for _, kept := range []string{`"application_type":"native"`, `"jwks":null`, `"client_uri":null`} {
		if !strings.Contains(string(b), kept) {
			t.Errorf("rewrite lost %s: %s", kept, b)
		}
	}
	var again ClientInfo
	if err := json.Unmarshal(b, &again); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(ci, again, cmp.AllowUnexported(ClientInfo{})); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
}

// A registration answer with fractional seconds (servers that write
// time.time() or Date.now()/1000) is read; the fraction is dropped.
func TestClientInfoFractionalSeconds(t *testing.T) {
	var ci ClientInfo
	in := `{"client_id":"abc","client_id_issued_at":1732650000.5,"client_secret":"s","client_secret_expires_at":1732653600.25}`
	if err := json.Unmarshal([]byte(in), &ci); err != nil {
		t.Fatal(err)
	}
	if ci.ClientIDIssuedAt != 1732650000 || ci.ClientSecretExpiresAt != 1732653600 {
		t.Errorf("read issued_at %d, secret_expires_at %d; want 1732650000, 1732653600", ci.ClientIDIssuedAt, ci.ClientSecretExpiresAt)
	}
	b, err := json.Marshal(ci)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"client_id_issued_at":1732650000,`) {
		t.Errorf("written as %s, want whole seconds", b)
	}
}

// fast-agent reads client records with the MCP Python SDK's model, whose
// grant_types and response_types are lists with defaults: null makes it
// throw the record away and register again.
func TestClientInfoWritesListsFastAgentReads(t *testing.T) {
	b, err := json.Marshal(ClientInfo{ClientID: "https://client.example/meta.json", TokenEndpointAuthMethod: "none"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"grant_types":["authorization_code","refresh_token"]`, `"response_types":["code"]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record %s lacks %s", b, want)
		}
	}
	b, err = json.Marshal(ClientInfo{ClientID: "c", GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"grant_types":["authorization_code"]`, `"response_types":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("record %s lacks %s", b, want)
		}
	}
}

func TestClientInfoRejectsBadRecords(t *testing.T) {
	for _, in := range []string{`nope`, `{}`, `{"client_id":""}`, `{"client_id":"x","redirect_uris":"not a list"}`,
		`{"client_id":"x","client_id_issued_at":1e300}`, `{"client_id":"x","client_secret_expires_at":"soon"}`} {
		var ci ClientInfo
		if err := json.Unmarshal([]byte(in), &ci); err == nil {
			t.Errorf("Unmarshal(%s) succeeded, want error", in)
		}
	}
}

func cmpopts() cmp.Option {
	return cmp.FilterPath(func(p cmp.Path) bool { return p.Last().String() == ".extra" }, cmp.Ignore())
}
