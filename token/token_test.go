package token

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/internal/testutil"
)

var (
	secretA = []byte("0123456789abcdef-secret-A")
	secretB = []byte("0123456789abcdef-secret-B")
	t0      = time.Unix(1_763_700_000, 0)
)

func mustSigner(t testing.TB, cur, prev []byte) *Signer {
	t.Helper()
	s, err := NewSigner(cur, prev, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestIssueVerify(t *testing.T) {
	s := mustSigner(t, secretA, nil)
	tok := s.Issue("u12345", "launch-2026", t0)
	user, err := s.Verify(nil, []byte(tok), []byte("launch-2026"), t0.Add(time.Hour))
	if err != nil || string(user) != "u12345" {
		t.Fatalf("Verify = %q, %v; want u12345, nil", user, err)
	}
}

func TestVerifyRefuses(t *testing.T) {
	s := mustSigner(t, secretA, nil)
	other := mustSigner(t, secretB, nil)
	tok := s.Issue("u1", "s1", t0)
	payload, _, _ := strings.Cut(strings.TrimPrefix(tok, prefix), ".")
	forgedPayload := b64.EncodeToString([]byte("admin|s1|9999999999"))
	for _, tc := range []struct {
		name   string
		tok    string
		stream string
		at     time.Time
		want   error
	}{
		{"expired", tok, "s1", t0.Add(12 * time.Hour), ErrExpired},
		{"other stream", tok, "s2", t0, ErrWrongStream},
		{"other secret", other.Issue("u1", "s1", t0), "s1", t0, ErrBadSignature},
		{"payload swapped", prefix + forgedPayload + tok[strings.LastIndexByte(tok, '.'):], "s1", t0, ErrBadSignature},
		{"signature cut", tok[:len(tok)-2], "s1", t0, ErrMalformed},
		{"no prefix", strings.TrimPrefix(tok, prefix), "s1", t0, ErrMalformed},
		{"no signature", prefix + payload, "s1", t0, ErrMalformed},
		{"empty", "", "s1", t0, ErrMalformed},
		{"not base64", prefix + "!!!." + strings.Repeat("A", 43), "s1", t0, ErrMalformed},
		{"huge", prefix + strings.Repeat("A", 10_000) + "." + strings.Repeat("A", 43), "s1", t0, ErrMalformed},
		{"unused bits of the signature set", tok[:len(tok)-1] + flipLowBit(tok[len(tok)-1]), "s1", t0, ErrMalformed},
		{"two dots", tok + ".x", "s1", t0, ErrMalformed},
		{"padded", tok + "=", "s1", t0, ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Verify(nil, []byte(tc.tok), []byte(tc.stream), tc.at); !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v; want %v", err, tc.want)
			}
		})
	}
}

// flipLowBit returns the base64url character whose value differs from c's
// in the lowest bit, which the last character of a 32-byte value does not use.
func flipLowBit(c byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	return string(alphabet[strings.IndexByte(alphabet, c)^1])
}

func TestRotationAcceptsPreviousSecret(t *testing.T) {
	old := mustSigner(t, secretA, nil)
	rotated := mustSigner(t, secretB, secretA)
	tok := old.Issue("u1", "s1", t0)
	if _, err := rotated.Verify(nil, []byte(tok), []byte("s1"), t0); err != nil {
		t.Fatalf("token of the previous secret refused after rotation: %v", err)
	}
	fresh := rotated.Issue("u1", "s1", t0)
	if _, err := old.Verify(nil, []byte(fresh), []byte("s1"), t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("a signer without the new secret accepted its token: %v", err)
	}
	retired := mustSigner(t, secretB, nil)
	if _, err := retired.Verify(nil, []byte(tok), []byte("s1"), t0); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("token of a retired secret accepted: %v", err)
	}
}

func TestNewSignerRejectsWeakSecrets(t *testing.T) {
	if _, err := NewSigner([]byte("short"), nil, time.Hour); err == nil {
		t.Error("short current secret accepted")
	}
	if _, err := NewSigner(secretA, []byte("short"), time.Hour); err == nil {
		t.Error("short previous secret accepted")
	}
}

func TestVerifyDoesNotAllocate(t *testing.T) {
	s := mustSigner(t, secretA, secretB)
	tok := []byte(s.Issue("u1", "s1", t0))
	dst := make([]byte, 0, 64)
	testutil.NoAllocs(t, "Verify", func() {
		if _, err := s.Verify(dst[:0], tok, []byte("s1"), t0); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzTamper: a token issued for valid ids verifies to its user, and no
// change of one byte makes it verify, for any user.
func FuzzTamper(f *testing.F) {
	f.Add("u1", "s1", uint16(0), byte('x'))
	f.Add("launch-2026", "u.1_-", uint16(60), byte('A'))
	f.Add(strings.Repeat("u", 64), strings.Repeat("s", 64), uint16(0xffff), byte('.'))
	s := mustSigner(f, secretA, secretB)
	f.Fuzz(func(t *testing.T, user, stream string, pos uint16, b byte) {
		if !api.ValidID([]byte(user)) || !api.ValidID([]byte(stream)) {
			return
		}
		tok := []byte(s.Issue(user, stream, t0))
		got, err := s.Verify(nil, tok, []byte(stream), t0)
		if err != nil || string(got) != user {
			t.Fatalf("Verify(Issue(%q, %q)) = %q, %v", user, stream, got, err)
		}
		i := int(pos) % len(tok)
		if tok[i] == b {
			return
		}
		tok[i] = b
		if got, err := s.Verify(nil, tok, []byte(stream), t0); err == nil {
			t.Fatalf("tampered token %q verified as %q", tok, got)
		}
	})
}

func FuzzVerify(f *testing.F) {
	s := mustSigner(f, secretA, secretB)
	f.Add(s.Issue("u1", "s1", t0), "s1")
	f.Add("v1..", "s1")
	f.Add("v1.AAAA."+strings.Repeat("A", 43), "")
	f.Fuzz(func(t *testing.T, tok, stream string) {
		user, err := s.Verify(nil, []byte(tok), []byte(stream), t0)
		if err == nil && (len(user) == 0 || strings.ContainsRune(string(user), '|')) {
			t.Fatalf("Verify accepted %q with user %q", tok, user)
		}
	})
}
