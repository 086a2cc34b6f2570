package token

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/emojicast/emojicast/api"
)

// ErrUnknownKey refuses a JWT whose kid names no configured key.
var ErrUnknownKey = errors.New("token: unknown key id")

// MinJWTSecretLen is the shortest HS256 secret a JWTVerifier accepts: the
// size of the hash, as RFC 7518 3.2 requires.
const MinJWTSecretLen = 32

// maxJWTLen bounds a token before it is parsed: a JWT with a user, a stream
// and an expiry signed with RSA-4096 is well under it.
const maxJWTLen = 2048

// JWTVerifier checks identity tokens that the application's own backend
// signs, as JWTs (RFC 7519): the backend knows its users, so it, not
// emojicast, says who a viewer is. A token names the user (sub), the
// stream (stream) and an expiry (exp), all required. Keys are listed with
// an id each; a token names its key in the kid header (required when
// there is more than one key), so keys rotate by adding the new one,
// signing with it, and removing the old once its tokens have expired. It
// is safe for concurrent use.
type JWTVerifier struct {
	keys    map[string]jwtKey
	methods []string
}

type jwtKey struct {
	alg string
	key any
}

// jwtClaims are the claims an identity token carries.
type jwtClaims struct {
	Stream string `json:"stream"`
	jwt.RegisteredClaims
}

// algorithms are the signing methods a key may use.
var algorithms = map[string]bool{"HS256": true, "RS256": true, "EdDSA": true}

// LoadJWTKeys reads a key list: one key per line, "kid alg key", where alg
// is HS256, RS256 or EdDSA; key is the shared secret for HS256 (at least
// 32 bytes) and, for the others, the path of a PEM public key (relative to
// the list's directory). Blank lines and lines starting with # are skipped.
func LoadJWTKeys(path string) (*JWTVerifier, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cannot read JWT keys: %w", err)
	}
	v := &JWTVerifier{keys: map[string]jwtKey{}}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 3 {
			return nil, fmt.Errorf("%s:%d: want \"kid alg key\"", path, line)
		}
		k, err := parseJWTKey(f[1], f[2], filepath.Dir(path))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: key %q: %w", path, line, f[0], err)
		}
		if _, dup := v.keys[f[0]]; dup {
			return nil, fmt.Errorf("%s:%d: key id %q listed twice", path, line, f[0])
		}
		v.keys[f[0]] = k
	}
	if len(v.keys) == 0 {
		return nil, fmt.Errorf("%s lists no key", path)
	}
	v.init()
	return v, nil
}

// NewJWTVerifier returns a verifier of HS256 tokens signed with the given
// secrets, by key id.
func NewJWTVerifier(secrets map[string][]byte) (*JWTVerifier, error) {
	v := &JWTVerifier{keys: map[string]jwtKey{}}
	for kid, s := range secrets {
		if len(s) < MinJWTSecretLen {
			return nil, fmt.Errorf("token: JWT secret %q is shorter than %d bytes", kid, MinJWTSecretLen)
		}
		v.keys[kid] = jwtKey{alg: "HS256", key: bytes.Clone(s)}
	}
	if len(v.keys) == 0 {
		return nil, errors.New("token: no JWT key")
	}
	v.init()
	return v, nil
}

func (v *JWTVerifier) init() {
	for _, k := range v.keys {
		if !slices.Contains(v.methods, k.alg) {
			v.methods = append(v.methods, k.alg)
		}
	}
}

func parseJWTKey(alg, key, dir string) (jwtKey, error) {
	if !algorithms[alg] {
		return jwtKey{}, fmt.Errorf("algorithm %q: want HS256, RS256 or EdDSA", alg)
	}
	if alg == "HS256" {
		if len(key) < MinJWTSecretLen {
			return jwtKey{}, fmt.Errorf("an HS256 secret needs at least %d bytes", MinJWTSecretLen)
		}
		return jwtKey{alg: alg, key: []byte(key)}, nil
	}
	if !filepath.IsAbs(key) {
		key = filepath.Join(dir, key)
	}
	b, err := os.ReadFile(key)
	if err != nil {
		return jwtKey{}, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return jwtKey{}, fmt.Errorf("%s holds no PEM block", key)
	}
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return jwtKey{}, fmt.Errorf("cannot parse the public key in %s: %w", key, err)
	}
	switch pub.(type) {
	case *rsa.PublicKey:
		if alg == "RS256" {
			return jwtKey{alg: alg, key: pub}, nil
		}
	case ed25519.PublicKey:
		if alg == "EdDSA" {
			return jwtKey{alg: alg, key: pub}, nil
		}
	}
	return jwtKey{}, fmt.Errorf("the key in %s is not an %s public key", key, alg)
}

// Verify checks a JWT for stream at time now and appends its user to dst.
func (v *JWTVerifier) Verify(dst, tok, stream []byte, now time.Time) ([]byte, error) {
	if len(tok) > maxJWTLen {
		return dst, ErrMalformed
	}
	var claims jwtClaims
	parser := jwt.NewParser(jwt.WithValidMethods(v.methods), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }))
	_, err := parser.ParseWithClaims(string(tok), &claims, func(t *jwt.Token) (any, error) {
		kid, _ := t.Header["kid"].(string)
		k, ok := v.keys[kid]
		if !ok && kid == "" && len(v.keys) == 1 {
			for _, only := range v.keys {
				k, ok = only, true
			}
		}
		if !ok {
			return nil, ErrUnknownKey
		}
		// The key decides the algorithm, never the token: an RSA public
		// key must not be taken as an HMAC secret.
		if t.Method.Alg() != k.alg {
			return nil, ErrBadSignature
		}
		return k.key, nil
	})
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return dst, ErrExpired
	case errors.Is(err, jwt.ErrTokenMalformed):
		return dst, ErrMalformed
	case err != nil:
		return dst, ErrBadSignature
	}
	if !api.ValidID([]byte(claims.Subject)) {
		return dst, ErrMalformed
	}
	if claims.Stream != string(stream) {
		return dst, ErrWrongStream
	}
	return append(dst, claims.Subject...), nil
}
