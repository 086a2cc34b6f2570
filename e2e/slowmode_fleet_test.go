package e2e

import (
	"fmt"
	"hash/fnv"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// commentOn posts a comment of user to stream on p, from an address of
// the user's own (slow mode binds the address group where ids are
// self-service, as in the open mode), and returns the status and the
// Retry-After header.
func commentOn(t *testing.T, p *proc, stream, user, text string) (int, string) {
	t.Helper()
	h := fnv.New32a()
	h.Write([]byte(user))
	sum := h.Sum32()
	local := &net.TCPAddr{IP: net.IPv4(127, 5, byte(sum>>8), byte(sum)|1)}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: (&net.Dialer{LocalAddr: local}).DialContext}}
	defer client.CloseIdleConnections()
	resp, err := client.Post(p.url+"/v1/streams/"+stream+"/comments", "application/json",
		strings.NewReader(fmt.Sprintf(`{"text":%q,"user":%q}`, text, user)))
	if err != nil {
		t.Fatalf("comment on %s: %v", p.name, err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestFleetSlowModeOnRedis: slow mode holds across the push fleet. A user
// whose requests a balancer spreads over 2 push processes on one
// redis-server still waits slow_mode_s between two comments, whichever
// node each reaches, and may comment again once it passed.
func TestFleetSlowModeOnRedis(t *testing.T) {
	t.Parallel()
	common := []string{"--redis", redistest.Start(t).URL(), "--seal-delay", fleetSealDelay}
	pushArgs := append(append([]string{"push"}, loadSender...), common...)
	pushes := []*proc{startProc(t, "push-1", pushArgs...), startProc(t, "push-2", pushArgs...)}
	ops := startProc(t, "pull-ops", append([]string{"pull", "--admin-token", fleetAdminToken}, common...)...)
	for _, p := range append(pushes, ops) {
		p.waitReady()
	}
	const period = 3
	if code, body := adminDo(t, ops, "PUT", "/v1/admin/streams/calm/settings", fmt.Sprintf(`{"slow_mode_s":%d}`, period)); code != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", code, body)
	}
	// Wait until each node enforces slow mode on its own, with a probe
	// user per attempt.
	probe := 0
	for _, p := range pushes {
		testutil.Eventually(t, 10*time.Second, "slow mode on "+p.name, func() bool {
			probe++
			user := fmt.Sprintf("probe-%s-%d", p.name, probe)
			commentOn(t, p, "calm", user, "one")
			code, _ := commentOn(t, p, "calm", user, "two")
			return code == http.StatusTooManyRequests
		})
	}

	for round := range 3 {
		user := fmt.Sprintf("hopper-%d", round)
		first, second := pushes[round%2], pushes[(round+1)%2]
		if code, _ := commentOn(t, first, "calm", user, "first"); code != http.StatusAccepted {
			t.Fatalf("round %d: the first comment of %s on %s: %d; want 202", round, user, first.name, code)
		}
		start := time.Now()
		code, retry := commentOn(t, second, "calm", user, "second")
		if code != http.StatusTooManyRequests {
			t.Fatalf("round %d: %s's second comment, on the other push node %v after the first: %d; want 429 (slow mode is %d s fleet-wide)",
				round, user, time.Since(start).Round(time.Millisecond), code, period)
		}
		if s, err := strconv.Atoi(retry); err != nil || s < 1 || s > period {
			t.Fatalf("round %d: Retry-After %q; want 1 to %d s", round, retry, period)
		}
		// The node that refused keeps refusing, and the first one too,
		// until the period since the first comment passed.
		for _, p := range pushes {
			if code, _ := commentOn(t, p, "calm", user, "again"); code != http.StatusTooManyRequests && time.Since(start) < time.Duration(period-1)*time.Second {
				t.Fatalf("round %d: %s's comment on %s within the period: %d; want 429", round, user, p.name, code)
			}
		}
	}

	// Once the period passed, the user comments again, on either node.
	user := "patient"
	if code, _ := commentOn(t, pushes[0], "calm", user, "first"); code != http.StatusAccepted {
		t.Fatalf("%s's first comment: %d", user, code)
	}
	first := time.Now()
	// The period is wall-clock time in Redis: wait it out, once.
	time.Sleep(time.Until(first.Add(period*time.Second + 100*time.Millisecond)))
	if code, _ := commentOn(t, pushes[1], "calm", user, "later"); code != http.StatusAccepted {
		t.Fatalf("%s's comment on the other node after the period: %d; want 202", user, code)
	}
	// Another stream has no slow mode.
	for _, p := range pushes {
		if code, _ := commentOn(t, p, "busy", "hasty", "hi"); code != http.StatusAccepted {
			t.Fatalf("a comment on a stream without slow mode, on %s: %d; want 202", p.name, code)
		}
	}
}
