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

// ErrClaims refuses a JWT that is well formed and signed but whose claims
// the verifier's rules do not accept: no exp, another (or no) audience or
// issuer when one is required, or a lifetime past JWTRules.MaxLifetime.
var ErrClaims = errors.New("token: claims not accepted")

// errCrit refuses a JWT with a crit header: it lists extensions the
// verifier must understand (RFC 7515 4.1.11), and it understands none.
var errCrit = errors.New("token: unknown critical header")

// DefaultJWTMaxLifetime is the longest a JWT may live unless the rules say
// otherwise: longer than any viewing session, and it bounds what a leaked
// token (or one minted with a typo'd expiry) is worth.
const DefaultJWTMaxLifetime = 24 * time.Hour

// JWTRules are what a verifier requires of a token's claims besides its
// user, stream and expiry. The zero value checks only the lifetime.
type JWTRules struct {
	// Audience, when set, must be the token's aud, or one of them when aud
	// is an array (RFC 7519 4.1.3): a token the backend minted for another
	// service is not one for emojicast. Default: aud is not checked.
	Audience string
	// Issuer, when set, must be the token's iss. Default: not checked.
	Issuer string
	// MaxLifetime bounds exp - iat, and exp - now (which alone bounds a
	// token without iat). Default: DefaultJWTMaxLifetime.
	MaxLifetime time.Duration
}

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
	rules   JWTRules
}

type jwtKey struct {
	alg string
	key any
}

// jwtClaims are the claims an identity token carries. The registered
// claims are spelled out rather than embedded from jwt.RegisteredClaims so
// that dates are JSON numbers only (RFC 7519 2, NumericDate): the library
// also takes a string of digits.
type jwtClaims struct {
	Stream    string           `json:"stream"`
	Subject   string           `json:"sub"`
	Issuer    string           `json:"iss"`
	Audience  jwt.ClaimStrings `json:"aud"`
	ExpiresAt *numericDate     `json:"exp"`
	NotBefore *numericDate     `json:"nbf"`
	IssuedAt  *numericDate     `json:"iat"`
}

var _ jwt.Claims = (*jwtClaims)(nil)

func (c *jwtClaims) GetExpirationTime() (*jwt.NumericDate, error) { return c.ExpiresAt.date(), nil }
func (c *jwtClaims) GetNotBefore() (*jwt.NumericDate, error)      { return c.NotBefore.date(), nil }
func (c *jwtClaims) GetIssuedAt() (*jwt.NumericDate, error)       { return c.IssuedAt.date(), nil }
func (c *jwtClaims) GetIssuer() (string, error)                   { return c.Issuer, nil }
func (c *jwtClaims) GetSubject() (string, error)                  { return c.Subject, nil }
func (c *jwtClaims) GetAudience() (jwt.ClaimStrings, error)       { return c.Audience, nil }

// numericDate is a date claim that must be a JSON number.
type numericDate struct{ jwt.NumericDate }

var errDateNotNumber = errors.New("token: a date claim is not a JSON number")

func (d *numericDate) UnmarshalJSON(b []byte) error {
	if len(b) == 0 || b[0] != '-' && (b[0] < '0' || b[0] > '9') {
		return errDateNotNumber
	}
	return d.NumericDate.UnmarshalJSON(b)
}

func (d *numericDate) date() *jwt.NumericDate {
	if d == nil {
		return nil
	}
	return &d.NumericDate
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

// SetRules sets what the verifier requires of claims. Call it before the
// verifier is used.
func (v *JWTVerifier) SetRules(r JWTRules) {
	if r.MaxLifetime <= 0 {
		r.MaxLifetime = DefaultJWTMaxLifetime
	}
	v.rules = r
}

func (v *JWTVerifier) init() {
	v.SetRules(JWTRules{})
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
	opts := []jwt.ParserOption{jwt.WithValidMethods(v.methods), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now })}
	if v.rules.Audience != "" {
		opts = append(opts, jwt.WithAudience(v.rules.Audience))
	}
	if v.rules.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(v.rules.Issuer))
	}
	_, err := jwt.NewParser(opts...).ParseWithClaims(string(tok), &claims, func(t *jwt.Token) (any, error) {
		if _, ok := t.Header["crit"]; ok {
			return nil, errCrit
		}
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
	case errors.Is(err, jwt.ErrTokenMalformed), errors.Is(err, errCrit):
		return dst, ErrMalformed
	case errors.Is(err, jwt.ErrTokenInvalidAudience), errors.Is(err, jwt.ErrTokenInvalidIssuer), errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return dst, ErrClaims
	case err != nil:
		return dst, ErrBadSignature
	}
	if !v.lifetimeOK(&claims, now) {
		return dst, ErrClaims
	}
	if !api.ValidID([]byte(claims.Subject)) {
		return dst, ErrMalformed
	}
	if claims.Stream != string(stream) {
		return dst, ErrWrongStream
	}
	return append(dst, claims.Subject...), nil
}

// lifetimeOK reports whether a verified token lives at most the rules'
// MaxLifetime: from iat when it has one, and from now in any case, so a
// far expiry is refused whatever iat claims.
func (v *JWTVerifier) lifetimeOK(c *jwtClaims, now time.Time) bool {
	exp := c.ExpiresAt.Time
	if exp.Sub(now) > v.rules.MaxLifetime {
		return false
	}
	return c.IssuedAt == nil || exp.Sub(c.IssuedAt.Time) <= v.rules.MaxLifetime
}
