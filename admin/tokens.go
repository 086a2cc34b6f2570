package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emojicast/emojicast/api"
)

// Token is an admin token: its secret and the label logs name it by.
type Token struct {
	Label  string
	Secret string
}

// MinSecretLen is the shortest admin token secret accepted: a token opens
// every stream's moderation, so it must not be guessable.
const MinSecretLen = 16

// ParseTokens parses a comma-separated list of tokens, each "label:secret"
// or a bare secret (labelled token1, token2, ... by position). Listing the
// new token before removing the old one rotates without downtime.
func ParseTokens(spec string) ([]Token, error) {
	var out []Token
	seen := map[string]bool{}
	for i, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		t := Token{Label: "token" + strconv.Itoa(i+1), Secret: item}
		if label, secret, ok := strings.Cut(item, ":"); ok && api.ValidID([]byte(label)) {
			t = Token{Label: label, Secret: secret}
		}
		if len(t.Secret) < MinSecretLen {
			return nil, fmt.Errorf("admin token %s is shorter than %d characters", t.Label, MinSecretLen)
		}
		if seen[t.Label] {
			return nil, fmt.Errorf("admin token label %s is used twice", t.Label)
		}
		seen[t.Label] = true
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, errors.New("no admin token in the list")
	}
	return out, nil
}

// match returns the label of the token a presented secret is, comparing
// with every token in constant time. The comparison is of SHA-256 digests,
// which are all as long, so the time does not tell a guesser a token's
// length either.
func match(tokens []Token, presented []byte) (string, bool) {
	label, found := "", false
	p := sha256.Sum256(presented)
	for _, t := range tokens {
		s := sha256.Sum256([]byte(t.Secret))
		if subtle.ConstantTimeCompare(s[:], p[:]) == 1 && !found {
			label, found = t.Label, true
		}
	}
	return label, found
}
