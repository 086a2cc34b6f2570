// Package token issues and checks the viewer tokens of docs/api.md: HMAC-SHA256
// signatures over a user, a stream and an expiry, so push nodes can trust who
// is tapping without a session store. Secrets rotate: a Signer signs with the
// current secret and also accepts tokens signed with the previous one.
package token

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"hash"
	"strconv"
	"sync"
	"time"
)

// MinSecretLen is the shortest secret a Signer accepts.
const MinSecretLen = 16

// DefaultTTL is how long tokens live unless the issuer says otherwise:
// longer than any viewing session, short enough that a leaked one expires.
const DefaultTTL = 12 * time.Hour

// The reasons a token is refused; all of them mean 401 to a client.
var (
	ErrMalformed    = errors.New("token: malformed")
	ErrBadSignature = errors.New("token: bad signature")
	ErrExpired      = errors.New("token: expired")
	ErrWrongStream  = errors.New("token: issued for another stream")
)

const prefix = "v1."

// b64 is strict so that each token has one spelling: a lenient decoder
// ignores the unused low bits of the last character, and a token with
// those bits flipped would verify too.
var b64 = base64.RawURLEncoding.Strict()

// Signer issues and verifies tokens. It is safe for concurrent use.
type Signer struct {
	ttl      time.Duration
	current  macPool
	previous *macPool // nil when there is no previous secret
}

// macPool pools HMAC states of one secret together with the scratch space a
// verification needs, so that nothing escapes to the heap per call.
type macPool struct{ pool sync.Pool }

type macer struct {
	h       hash.Hash
	payload [maxPayload]byte
	sum     [sha256.Size]byte
	got     [sha256.Size]byte
}

func newMACPool(secret []byte) macPool {
	key := bytes.Clone(secret)
	return macPool{pool: sync.Pool{New: func() any { return &macer{h: hmac.New(sha256.New, key)} }}}
}

func (p *macPool) get() *macer  { return p.pool.Get().(*macer) }
func (p *macPool) put(m *macer) { p.pool.Put(m) }

// mac returns the MAC of msg in m's scratch space.
func (m *macer) mac(msg []byte) []byte {
	m.h.Reset()
	m.h.Write(msg)
	return m.h.Sum(m.sum[:0])
}

// NewSigner returns a Signer whose tokens live for ttl. previous may be empty.
func NewSigner(current, previous []byte, ttl time.Duration) (*Signer, error) {
	if len(current) < MinSecretLen || len(previous) > 0 && len(previous) < MinSecretLen {
		return nil, errors.New("token: secrets must be at least 16 bytes")
	}
	if ttl <= 0 {
		return nil, errors.New("token: lifetime must be positive")
	}
	s := &Signer{ttl: ttl, current: newMACPool(current)}
	if len(previous) > 0 {
		p := newMACPool(previous)
		s.previous = &p
	}
	return s, nil
}

// Issue returns a token for user watching stream, valid until now plus the
// Signer's lifetime. user and stream must be valid ids (they never contain '|').
func (s *Signer) Issue(user, stream string, now time.Time) string {
	payload := make([]byte, 0, len(user)+len(stream)+24)
	payload = append(payload, user...)
	payload = append(payload, '|')
	payload = append(payload, stream...)
	payload = append(payload, '|')
	payload = strconv.AppendInt(payload, now.Add(s.ttl).Unix(), 10)
	tok := make([]byte, 0, len(prefix)+b64.EncodedLen(len(payload))+1+b64.EncodedLen(sha256.Size))
	tok = append(tok, prefix...)
	tok = b64.AppendEncode(tok, payload)
	tok = append(tok, '.')
	m := s.current.get()
	tok = b64.AppendEncode(tok, m.mac(payload))
	s.current.put(m)
	return string(tok)
}

// IsAnonymous reports whether tok has the form of a Signer's token rather
// than a JWT.
func IsAnonymous(tok []byte) bool { return bytes.HasPrefix(tok, []byte(prefix)) }

// maxPayload bounds a payload: two 64-byte ids, two separators, an expiry.
const maxPayload = 64 + 1 + 64 + 1 + 20

// Verify checks tok for stream at time now and appends its user to dst. It
// does not allocate beyond growing dst.
func (s *Signer) Verify(dst, tok, stream []byte, now time.Time) ([]byte, error) {
	rest, ok := bytes.CutPrefix(tok, []byte(prefix))
	if !ok {
		return dst, ErrMalformed
	}
	encPayload, encMAC, ok := bytes.Cut(rest, []byte{'.'})
	if !ok || b64.DecodedLen(len(encPayload)) > maxPayload || b64.DecodedLen(len(encMAC)) != sha256.Size {
		return dst, ErrMalformed
	}
	m := s.current.get()
	defer s.current.put(m)
	n, err := b64.Decode(m.payload[:], encPayload)
	if err != nil {
		return dst, ErrMalformed
	}
	payload := m.payload[:n]
	if _, err := b64.Decode(m.got[:], encMAC); err != nil {
		return dst, ErrMalformed
	}
	if !hmac.Equal(m.mac(payload), m.got[:]) && !s.previousSigned(payload, m.got[:]) {
		return dst, ErrBadSignature
	}
	// The signature is ours, so the payload has the shape Issue gave it.
	user, rest, _ := bytes.Cut(payload, []byte{'|'})
	tokStream, expiry, _ := bytes.Cut(rest, []byte{'|'})
	exp, ok := parseUnix(expiry)
	if !ok {
		return dst, ErrMalformed
	}
	if !bytes.Equal(tokStream, stream) {
		return dst, ErrWrongStream
	}
	if now.Unix() >= exp {
		return dst, ErrExpired
	}
	return append(dst, user...), nil
}

func (s *Signer) previousSigned(payload, got []byte) bool {
	if s.previous == nil {
		return false
	}
	m := s.previous.get()
	defer s.previous.put(m)
	return hmac.Equal(m.mac(payload), got)
}

// parseUnix parses the decimal expiry Issue wrote.
func parseUnix(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
