package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"

	"github.com/emojicast/emojicast/store"
)

// TestHistoryAfterTheWindow: taps and comments accepted over HTTP, read back
// from history exactly once the ring's window has passed them, on the
// memory store of one node and its clock.
func TestHistoryAfterTheWindow(t *testing.T) {
	n := startNode(t)
	n.poll("replayed", nil) // a viewer opens the stream, so the ring holds it
	n.step()
	first := n.clk.Now().Unix()
	want := map[int64]map[string]int64{}
	comments := map[int64]int{}
	for i := range 20 {
		sec := n.clk.Now().Unix()
		want[sec] = map[string]int64{}
		for j, e := range []string{"love", "fire", "clap"}[:1+i%3] {
			if got := n.send("replayed", fmt.Sprintf("u%d-%d", i, j), e, 1+i%5); got != http.StatusAccepted {
				t.Fatalf("send: %d", got)
			}
			want[sec][e] += int64(1 + i%5)
		}
		if i%4 == 0 {
			body := fmt.Sprintf(`{"text":"at %d","user":"c%d"}`, i, i)
			if r := n.do("POST", "/v1/streams/replayed/comments", body, map[string]string{"Content-Type": "application/json"}); r.status != http.StatusAccepted {
				t.Fatalf("comment: %d %s", r.status, r.body)
			}
			comments[sec]++
		}
		n.step()
	}
	last := n.clk.Now().Unix() - 1
	for range store.Window + 5 {
		n.poll("replayed", nil) // a viewer keeps watching
		n.step()
	}
	since := first - 1
	if p, _ := n.poll("replayed", &since); !p.Gap {
		t.Fatal("the ring still holds the taps; the test must wait past its window")
	}
	r := n.do("GET", fmt.Sprintf("/v1/streams/replayed/history?from=%d&to=%d", first, last), "", nil)
	var h struct {
		From, To int64
		Buckets  []struct {
			T int64            `json:"t"`
			C map[string]int64 `json:"c"`
			M []struct{ U, X string }
		}
	}
	if err := json.Unmarshal(r.body, &h); r.status != http.StatusOK || err != nil {
		t.Fatalf("history: %d %s (%v)", r.status, r.body, err)
	}
	if h.From != first || h.To != last || len(h.Buckets) != len(want) {
		t.Fatalf("history from %d to %d with %d buckets; want %d to %d with %d", h.From, h.To, len(h.Buckets), first, last, len(want))
	}
	for _, b := range h.Buckets {
		if fmt.Sprint(b.C) != fmt.Sprint(want[b.T]) || len(b.M) != comments[b.T] {
			t.Fatalf("second %d: history %v and %d comments; accepted %v and %d", b.T, b.C, len(b.M), want[b.T], comments[b.T])
		}
	}
}
