package token

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var jwtNow = time.Unix(1_763_700_000, 0)

// mint signs claims as an application backend would.
func mint(t *testing.T, method jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(method, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(user, stream string, exp time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": user, "stream": stream, "exp": exp.Unix()}
}

func writePEM(t *testing.T, dir, name string, pub any) {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestJWTKeysRotate: tokens of every listed key verify, each with its own
// algorithm; after a key is removed its tokens do not.
func TestJWTKeysRotate(t *testing.T) {
	dir := t.TempDir()
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, edPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writePEM(t, dir, "rsa.pem", &rsaKey.PublicKey)
	writePEM(t, dir, "ed.pem", edPub)
	secret := "0123456789abcdef0123456789abcdef-old"
	list := filepath.Join(dir, "keys")
	write := func(s string) {
		if err := os.WriteFile(list, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("# kid alg key\nold HS256 " + secret + "\n\nr1 RS256 rsa.pem\ne1 EdDSA " + filepath.Join(dir, "ed.pem") + "\n")
	v, err := LoadJWTKeys(list)
	if err != nil {
		t.Fatal(err)
	}
	exp := jwtNow.Add(time.Hour)
	toks := map[string]string{
		"old": mint(t, jwt.SigningMethodHS256, "old", []byte(secret), claims("alice", "s", exp)),
		"r1":  mint(t, jwt.SigningMethodRS256, "r1", rsaKey, claims("alice", "s", exp)),
		"e1":  mint(t, jwt.SigningMethodEdDSA, "e1", edPriv, claims("alice", "s", exp)),
	}
	for kid, tok := range toks {
		user, err := v.Verify(nil, []byte(tok), []byte("s"), jwtNow)
		if err != nil || string(user) != "alice" {
			t.Fatalf("token of key %s: user %q, %v", kid, user, err)
		}
	}
	write("r1 RS256 rsa.pem\n")
	if v, err = LoadJWTKeys(list); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(nil, []byte(toks["old"]), []byte("s"), jwtNow); err == nil {
		t.Fatal("a token of a removed key verified")
	}
	// With one key, kid may be left out.
	noKid := mint(t, jwt.SigningMethodRS256, "", rsaKey, claims("bob", "s", exp))
	if user, err := v.Verify(nil, []byte(noKid), []byte("s"), jwtNow); err != nil || string(user) != "bob" {
		t.Fatalf("a token without kid and one key: %q, %v", user, err)
	}
}

// TestJWTRefused: every way a token can be wrong is refused, with the
// reason.
func TestJWTRefused(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	other := []byte("fedcba9876543210fedcba9876543210")
	v, err := NewJWTVerifier(map[string][]byte{"k1": secret, "k2": other})
	if err != nil {
		t.Fatal(err)
	}
	exp := jwtNow.Add(time.Hour)
	for _, tc := range []struct {
		name string
		tok  string
		want error
	}{
		{"another stream", mint(t, jwt.SigningMethodHS256, "k1", secret, claims("alice", "other", exp)), ErrWrongStream},
		{"expired", mint(t, jwt.SigningMethodHS256, "k1", secret, claims("alice", "s", jwtNow)), ErrExpired},
		{"no expiry", mint(t, jwt.SigningMethodHS256, "k1", secret, jwt.MapClaims{"sub": "alice", "stream": "s"}), ErrClaims},
		{"no user", mint(t, jwt.SigningMethodHS256, "k1", secret, jwt.MapClaims{"stream": "s", "exp": exp.Unix()}), ErrMalformed},
		{"user not an id", mint(t, jwt.SigningMethodHS256, "k1", secret, claims("a|b", "s", exp)), ErrMalformed},
		{"signed with another key than its kid", mint(t, jwt.SigningMethodHS256, "k1", other, claims("alice", "s", exp)), ErrBadSignature},
		{"unknown kid", mint(t, jwt.SigningMethodHS256, "k9", secret, claims("alice", "s", exp)), ErrBadSignature},
		{"no kid among two keys", mint(t, jwt.SigningMethodHS256, "", secret, claims("alice", "s", exp)), ErrBadSignature},
		{"alg none", mint(t, jwt.SigningMethodNone, "k1", jwt.UnsafeAllowNoneSignatureType, claims("alice", "s", exp)), ErrBadSignature},
		{"HS512 for an HS256 key", mint(t, jwt.SigningMethodHS512, "k1", secret, claims("alice", "s", exp)), ErrBadSignature},
		{"not a JWT", "v1.abc.def", ErrMalformed},
		{"too long", string(make([]byte, 4096)), ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			user, err := v.Verify(nil, []byte(tc.tok), []byte("s"), jwtNow)
			if !errors.Is(err, tc.want) {
				t.Fatalf("user %q, error %v; want %v", user, err, tc.want)
			}
		})
	}
}

// TestJWTKeyListErrors: a bad key list stops the start with a reason.
func TestJWTKeyListErrors(t *testing.T) {
	dir := t.TempDir()
	edPub, _, _ := ed25519.GenerateKey(rand.Reader)
	writePEM(t, dir, "ed.pem", edPub)
	for _, list := range []string{
		"",
		"k1 HS256 short",
		"k1 HS512 0123456789abcdef0123456789abcdef",
		"k1 RS256 ed.pem",
		"k1 EdDSA missing.pem",
		"k1 HS256",
		"k1 HS256 0123456789abcdef0123456789abcdef\nk1 EdDSA ed.pem",
	} {
		p := filepath.Join(dir, "keys")
		if err := os.WriteFile(p, []byte(list), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadJWTKeys(p); err == nil {
			t.Errorf("key list %q loaded; want an error", list)
		}
	}
}

// TestJWTStrictDefaults: with no rules set, a token with an unknown crit
// header, a date that is not a JSON number, or an expiry far past any
// session is refused.
func TestJWTStrictDefaults(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewJWTVerifier(map[string][]byte{"k1": secret})
	if err != nil {
		t.Fatal(err)
	}
	exp := jwtNow.Add(time.Hour)
	crit := jwt.NewWithClaims(jwt.SigningMethodHS256, claims("alice", "s", exp))
	crit.Header["crit"] = []string{"x-must-understand"}
	crit.Header["x-must-understand"] = true
	critTok, err := crit.SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, val any) jwt.MapClaims {
		c := claims("alice", "s", exp)
		c[k] = val
		return c
	}
	year9999 := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC).Unix()
	for _, tc := range []struct {
		name string
		tok  string
	}{
		{"unknown crit header", critTok},
		{"exp as a string", mint(t, jwt.SigningMethodHS256, "", secret, with("exp", strconv.FormatInt(exp.Unix(), 10)))},
		{"nbf as a string", mint(t, jwt.SigningMethodHS256, "", secret, with("nbf", strconv.FormatInt(jwtNow.Unix()-10, 10)))},
		{"iat as a string", mint(t, jwt.SigningMethodHS256, "", secret, with("iat", strconv.FormatInt(jwtNow.Unix()-10, 10)))},
		{"exp in year 9999", mint(t, jwt.SigningMethodHS256, "", secret, with("exp", year9999))},
		{"exp in year 9999 with iat", mint(t, jwt.SigningMethodHS256, "", secret, jwt.MapClaims{"sub": "alice", "stream": "s", "iat": jwtNow.Unix(), "exp": year9999})},
		{"a lifetime of 25 h", mint(t, jwt.SigningMethodHS256, "", secret, jwt.MapClaims{"sub": "alice", "stream": "s", "iat": jwtNow.Unix() - 3600, "exp": jwtNow.Add(24 * time.Hour).Unix()})},
		{"25 h left without iat", mint(t, jwt.SigningMethodHS256, "", secret, with("exp", jwtNow.Add(25*time.Hour).Unix()))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if user, err := v.Verify(nil, []byte(tc.tok), []byte("s"), jwtNow); err == nil {
				t.Fatalf("accepted as user %q; want it refused", user)
			}
		})
	}
	for name, c := range map[string]jwt.MapClaims{
		"23 h left":                with("exp", jwtNow.Add(23*time.Hour).Unix()),
		"a lifetime of 24 h":       jwt.MapClaims{"sub": "alice", "stream": "s", "iat": jwtNow.Unix() - 3600, "exp": jwtNow.Add(23 * time.Hour).Unix()},
		"numeric nbf and iat":      jwt.MapClaims{"sub": "alice", "stream": "s", "nbf": jwtNow.Unix() - 5, "iat": jwtNow.Unix() - 5, "exp": exp.Unix()},
		"a fractional numeric exp": with("exp", float64(exp.Unix())+0.5),
	} {
		if user, err := v.Verify(nil, []byte(mint(t, jwt.SigningMethodHS256, "", secret, c)), []byte("s"), jwtNow); err != nil || string(user) != "alice" {
			t.Fatalf("%s: user %q, %v; want alice", name, user, err)
		}
	}
}

// TestJWTAudienceAndIssuer: with an audience and an issuer required, a
// token another service was given (its aud or iss) is refused; aud may be
// a string or an array (RFC 7519 4.1.3).
func TestJWTAudienceAndIssuer(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	v, err := NewJWTVerifier(map[string][]byte{"k1": secret})
	if err != nil {
		t.Fatal(err)
	}
	v.SetRules(JWTRules{Audience: "emojicast", Issuer: "https://auth.example"})
	exp := jwtNow.Add(time.Hour).Unix()
	tok := func(aud any, iss string) string {
		c := jwt.MapClaims{"sub": "alice", "stream": "s", "exp": exp}
		if aud != nil {
			c["aud"] = aud
		}
		if iss != "" {
			c["iss"] = iss
		}
		return mint(t, jwt.SigningMethodHS256, "", secret, c)
	}
	for name, s := range map[string]string{
		"aud a string": tok("emojicast", "https://auth.example"),
		"aud an array": tok([]string{"billing", "emojicast"}, "https://auth.example"),
	} {
		if user, err := v.Verify(nil, []byte(s), []byte("s"), jwtNow); err != nil || string(user) != "alice" {
			t.Fatalf("%s: user %q, %v; want alice", name, user, err)
		}
	}
	for name, s := range map[string]string{
		"another service's aud":    tok("billing", "https://auth.example"),
		"another service's auds":   tok([]string{"billing", "chat"}, "https://auth.example"),
		"no aud":                   tok(nil, "https://auth.example"),
		"another issuer":           tok("emojicast", "https://evil.example"),
		"no issuer":                tok("emojicast", ""),
		"aud of the wrong type":    tok(42, "https://auth.example"),
		"aud an empty array":       tok([]string{}, "https://auth.example"),
		"iss a prefix of the real": tok("emojicast", "https://auth.exampl"),
	} {
		if user, err := v.Verify(nil, []byte(s), []byte("s"), jwtNow); !errors.Is(err, ErrClaims) && !errors.Is(err, ErrMalformed) {
			t.Fatalf("%s: user %q, %v; want it refused for its claims", name, user, err)
		}
	}
}
