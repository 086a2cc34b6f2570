package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// TestJWTFlags: --jwt-audience, --jwt-issuer and --jwt-max-lifetime reach
// the nodes' verifier: a send with a token another service was given, or
// one that lives too long, is 401; the token meant for emojicast is taken.
func TestJWTFlags(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef0123456789abcdef-flags")
	keys := filepath.Join(t.TempDir(), "jwt-keys")
	if err := os.WriteFile(keys, []byte("k1 HS256 "+string(secret)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "serve", "serve", "--log-level", "warn", "--jwt-keys", keys,
		"--jwt-audience", "emojicast", "--jwt-issuer", "https://auth.example", "--jwt-max-lifetime", "2h")
	now := time.Now()
	mint := func(aud, iss string, exp time.Time) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": "alice", "stream": "s", "aud": aud, "iss": iss, "iat": now.Unix(), "exp": exp.Unix(),
		}).SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	send := func(tok string) int {
		return rawDo(t, http.MethodPost, p.url+"/v1/streams/s/reactions", `{"emoji":"love"}`,
			"Content-Type", "application/json", "Authorization", "Bearer "+tok).status
	}
	for name, tok := range map[string]string{
		"another audience":        mint("billing", "https://auth.example", now.Add(time.Hour)),
		"another issuer":          mint("emojicast", "https://other.example", now.Add(time.Hour)),
		"past --jwt-max-lifetime": mint("emojicast", "https://auth.example", now.Add(3*time.Hour)),
	} {
		if code := send(tok); code != http.StatusUnauthorized {
			t.Fatalf("send with a token of %s: %d; want 401", name, code)
		}
	}
	if code := send(mint("emojicast", "https://auth.example", now.Add(time.Hour))); code != http.StatusAccepted {
		t.Fatalf("send with emojicast's token: %d; want 202", code)
	}
}
