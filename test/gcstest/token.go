package gcstest

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// TokenServer is an OAuth 2.0 token endpoint on 127.0.0.1 for one service account, as
// Google's is for service account keys: it grants a token for an assertion signed with the
// account's registered key and answers any other with 400 invalid_grant.
type TokenServer struct {
	URL        string
	registered *rsa.PrivateKey
	tokens     atomic.Int32
}

// StartTokenServer starts a token endpoint and stops it when the test ends.
func StartTokenServer(t testing.TB) *TokenServer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ts := &TokenServer{registered: key}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if err := verifyRS256(r.FormValue("assertion"), &key.PublicKey); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"error":"invalid_grant","error_description":"Invalid JWT Signature."}`)
			return
		}
		ts.tokens.Add(1)
		fmt.Fprint(w, `{"access_token":"ya29.test","token_type":"Bearer","expires_in":3600}`)
	}))
	t.Cleanup(srv.Close)
	ts.URL = srv.URL
	return ts
}

// Tokens is the number of tokens granted so far.
func (ts *TokenServer) Tokens() int { return int(ts.tokens.Load()) }

// KeyFile writes the account's key file (the registered key) and returns its path.
func (ts *TokenServer) KeyFile(t testing.TB) string { return ts.keyFile(t, ts.registered) }

// WrongKeyFile writes a key file for the account holding a valid RSA key that is not the
// registered one, and returns its path.
func (ts *TokenServer) WrongKeyFile(t testing.TB) string {
	t.Helper()
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return ts.keyFile(t, other)
}

func (ts *TokenServer) keyFile(t testing.TB, key *rsa.PrivateKey) string {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "pgward-test",
		"private_key_id": "0123456789abcdef",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "pgward@pgward-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      ts.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// verifyRS256 checks an RS256 JWT's signature with pub.
func verifyRS256(jwt string, pub *rsa.PublicKey) error {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return errors.New("not a JWT")
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	return rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig)
}
