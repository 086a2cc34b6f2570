package server

import (
	"encoding/json"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/token"
)

// anonymousWatch mints an anonymous id on c through watch and returns its
// Authorization header line.
func anonymousWatch(t *testing.T, c net.Conn, stream string) string {
	t.Helper()
	r := exchange(t, c, "GET /v1/streams/"+stream+"/watch HTTP/1.1\r\nHost: x\r\n\r\n")
	var w watchBody
	if r.status != 200 || json.Unmarshal(r.body, &w) != nil {
		t.Fatalf("watch: %d %s", r.status, r.body)
	}
	return "Authorization: Bearer " + w.Token + "\r\n"
}

func postFrom(t *testing.T, c net.Conn, auth, path, body string) int {
	t.Helper()
	raw := fmt.Sprintf("POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", path, auth, len(body), body)
	return exchange(t, c, raw).status
}

// TestAddressBanBindsFreshAnonymousIDs: in anonymous mode an operator bans
// the address a troll comments from; the troll watches again for a fresh
// id and can neither comment nor tap until the ban is lifted, while another
// address is untouched; the admin API lists the ban as an address. (Before,
// review finding 7: a banned viewer watched again and posted 209 comments
// in 10 s.)
func TestAddressBanBindsFreshAnonymousIDs(t *testing.T) {
	signer, err := token.NewSigner([]byte("a-secret-of-at-least-16-bytes"), nil, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var log testutil.SyncBuffer
	n := adminNode(t, &log, func(c *nodeConfig) { c.signer = signer })
	n.step()
	troll := dialFrom(t, "127.0.0.41", n.srv.Addr())
	fan := dialFrom(t, "127.0.0.42", n.srv.Addr())
	if code := postFrom(t, troll, anonymousWatch(t, troll, "s"), "/v1/streams/s/comments", `{"text":"first"}`); code != 202 {
		t.Fatalf("the troll's first comment: %d; want 202", code)
	}
	r := n.admin("POST", "/v1/admin/streams/s/bans", `{"address":"127.0.0.41","seconds":600}`)
	var ban struct{ User, Address string }
	if r.status != 201 || json.Unmarshal(r.body, &ban) != nil || ban.Address != "127.0.0.41/32" {
		t.Fatalf("ban of an address: %d %s", r.status, r.body)
	}
	eventuallyStatus(t, "a fresh id from the banned address comments", 403, func() int {
		return postFrom(t, troll, anonymousWatch(t, troll, "s"), "/v1/streams/s/comments", `{"text":"again"}`)
	})
	for i := range 5 {
		auth := anonymousWatch(t, troll, "s")
		if code := postFrom(t, troll, auth, "/v1/streams/s/comments", `{"text":"again"}`); code != 403 {
			t.Errorf("comment %d from a fresh id of the banned address: %d; want 403", i, code)
		}
		if code := postFrom(t, troll, auth, "/v1/streams/s/reactions", `{"emoji":"love"}`); code != 403 {
			t.Errorf("tap %d from a fresh id of the banned address: %d; want 403", i, code)
		}
	}
	if code := postFrom(t, fan, anonymousWatch(t, fan, "s"), "/v1/streams/s/comments", `{"text":"hi"}`); code != 202 {
		t.Errorf("another address's comment: %d; want 202", code)
	}
	var got struct {
		Bans []struct{ User, Address string }
	}
	if r := n.admin("GET", "/v1/admin/streams/s", ""); r.status != 200 || json.Unmarshal(r.body, &got) != nil || len(got.Bans) != 1 || got.Bans[0].Address != "127.0.0.41/32" {
		t.Fatalf("the stream's bans: %d %s; want the address", r.status, r.body)
	}
	if r := n.admin("DELETE", "/v1/admin/streams/s/bans/"+got.Bans[0].User, ""); r.status != 204 {
		t.Fatalf("lifting the address's ban: %d %s", r.status, r.body)
	}
	eventuallyStatus(t, "a fresh id from the unbanned address comments", 202, func() int {
		return postFrom(t, troll, anonymousWatch(t, troll, "s"), "/v1/streams/s/comments", `{"text":"sorry"}`)
	})
	wantError(t, "a ban naming both", n.admin("POST", "/v1/admin/streams/s/bans", `{"user":"u","address":"127.0.0.1","seconds":60}`), 400, "invalid_body")
	wantError(t, "a ban of a bad address", n.admin("POST", "/v1/admin/streams/s/bans", `{"address":"127.0.0.300","seconds":60}`), 400, "invalid_address")
}
