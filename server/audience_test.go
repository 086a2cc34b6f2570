package server

import (
	"encoding/json"
	"net/http"
	"testing"
)

// TestOneClientCannotFakeAnAudience: one connection polling a served stream
// as fast as it can is refused past its per-address allowance, and what it
// got through counts as a few viewers, not one per poll.
func TestOneClientCannotFakeAnAudience(t *testing.T) {
	n := startNode(t)
	n.step()
	n.watch("show", "w")
	n.step()
	flood := dialFrom(t, "127.0.0.7", n.srv.Addr())
	const polls = 2000
	ok, limited := 0, 0
	for range polls {
		switch r := exchange(t, flood, "GET /v1/streams/show/reactions HTTP/1.1\r\nHost: x\r\n\r\n"); r.status {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			checkError(t, r, 429, "rate_limited")
			limited++
		default:
			t.Fatalf("flood poll: %d %s", r.status, r.body)
		}
	}
	if limited == 0 || ok > 2*100 {
		t.Fatalf("%d of %d polls in one instant were answered; want the per-address allowance (100) to stop them", ok, polls)
	}
	n.step()
	r := exchange(t, dialFrom(t, "127.0.0.8", n.srv.Addr()), "GET /v1/streams/show/reactions HTTP/1.1\r\nHost: x\r\n\r\n")
	var pb pollBody
	if err := json.Unmarshal(r.body, &pb); r.status != http.StatusOK || err != nil {
		t.Fatalf("poll: %d %s", r.status, r.body)
	}
	if pb.Viewers > 5 {
		t.Fatalf("one flooding client made %d viewers; want at most a few", pb.Viewers)
	}
	if counterValue(t, n, `emojicast_http_client_ip_limited_total{limit="poll"}`) == 0 {
		t.Fatal("/metrics does not count the refused polls")
	}
}
