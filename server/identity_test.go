package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/emojicast/emojicast/token"
)

// commentAs posts a comment with a bearer token and returns the status.
func (n *node) commentAs(stream, tok, bodyUser, text string) int {
	n.t.Helper()
	body, _ := json.Marshal(map[string]string{"text": text, "user": bodyUser})
	return n.do("POST", "/v1/streams/"+stream+"/comments", string(body),
		map[string]string{"Content-Type": jsonCT, "Authorization": "Bearer " + tok}).status
}

// watchAs watches with the given headers and decodes the answer.
func (n *node) watchAs(path string, headers map[string]string) (watchBody, response) {
	n.t.Helper()
	r := n.do("GET", path, "", headers)
	var w watchBody
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &w); err != nil {
			n.t.Fatalf("watch: %v: %s", err, r.body)
		}
	}
	return w, r
}

// TestNobodyWatchesAsAnother: with anonymous tokens, watch?user=alice hands
// out no token for alice: every watch gets an id the server made up, so a
// comment can never be posted as a chosen user.
func TestNobodyWatchesAsAnother(t *testing.T) {
	signer, err := token.NewSigner([]byte("a-secret-of-at-least-16-bytes"), nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, func(c *nodeConfig) { c.signer = signer })
	n.step()
	v := n.newCommentViewer("s")
	seen := map[string]bool{}
	for range 3 {
		w := n.watch("s", "alice")
		if w.User == "alice" || !strings.HasPrefix(w.User, "anon-") || seen[w.User] || w.Token == "" {
			t.Fatalf("watch?user=alice answered user %q token %q; want a fresh server-made id", w.User, w.Token)
		}
		seen[w.User] = true
	}
	w := n.watch("s", "alice")
	if code := n.commentAs("s", w.Token, "alice", "hi, it is me"); code != http.StatusAccepted {
		t.Fatalf("comment: %d", code)
	}
	n.step()
	v.poll()
	for _, said := range v.seen {
		for _, c := range said {
			if c.user != w.User {
				t.Fatalf("the comment went out as %q; want the token's %q", c.user, w.User)
			}
		}
	}
}

// TestApplicationJWTIdentity: a viewer's identity comes from a JWT the
// application's backend signed: watch and sends take its user, for its
// stream only, and without one nobody can send or claim a user.
func TestApplicationJWTIdentity(t *testing.T) {
	secret := []byte("backend-secret-0123456789abcdef0123")
	v, err := token.NewJWTVerifier(map[string][]byte{"2026-11": secret})
	if err != nil {
		t.Fatal(err)
	}
	n := startNode(t, func(c *nodeConfig) { c.jwt = v })
	n.step()
	mint := func(user, stream string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": user, "stream": stream, "exp": n.clk.Now().Add(time.Hour).Unix(),
		})
		tok.Header["kid"] = "2026-11"
		s, err := tok.SignedString(secret)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice := mint("alice", "s")
	w, r := n.watchAs("/v1/streams/s/watch?user=mallory", map[string]string{"Authorization": "Bearer " + alice})
	if r.status != http.StatusOK || w.User != "alice" {
		t.Fatalf("watch with alice's JWT: %d, user %q; want alice", r.status, w.User)
	}
	anon, _ := n.watchAs("/v1/streams/s/watch?user=alice", nil)
	if anon.User != "" || anon.Token != "" {
		t.Fatalf("watch?user=alice without a JWT answered user %q token %q; want neither", anon.User, anon.Token)
	}
	_, r = n.watchAs("/v1/streams/s/watch", map[string]string{"Authorization": "Bearer " + mint("alice", "other")})
	checkError(t, r, 401, "unauthorized")

	cv := n.newCommentViewer("s")
	if code := n.commentAs("s", alice, "mallory", "hello"); code != http.StatusAccepted {
		t.Fatalf("comment with alice's JWT: %d", code)
	}
	send := func(tok string) response {
		return n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"alice"}`,
			map[string]string{"Content-Type": jsonCT, "Authorization": "Bearer " + tok})
	}
	if r := send(alice); r.status != http.StatusAccepted {
		t.Fatalf("send with alice's JWT: %d %s", r.status, r.body)
	}
	checkError(t, send(mint("alice", "other")), 401, "unauthorized")
	checkError(t, n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"alice"}`,
		map[string]string{"Content-Type": jsonCT}), 401, "unauthorized")
	n.step()
	cv.poll()
	got := 0
	for _, said := range cv.seen {
		for _, c := range said {
			if c.user != "alice" {
				t.Fatalf("the comment went out as %q; want the JWT's alice", c.user)
			}
			got++
		}
	}
	if got != 1 {
		t.Fatalf("viewers saw %d comments; want 1", got)
	}
}
