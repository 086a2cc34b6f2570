package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

const fleetAdminToken = "ops:fleet-admin-secret-0123456789"

// adminDo makes one admin API call with the fleet's token.
func adminDo(t *testing.T, p *proc, method, path, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, p.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer fleet-admin-secret-0123456789")
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := fleetClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// postJSON posts body to p and returns the status and answer.
func postJSON(t *testing.T, p *proc, path, body string) (int, string) {
	t.Helper()
	resp, err := fleetClient.Post(p.url+path, "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// reachesAll waits until every push node answers want to a request, and
// returns how long that took.
func reachesAll(t *testing.T, what string, pushes []*proc, path, body string, want int) time.Duration {
	t.Helper()
	start := time.Now()
	for _, p := range pushes {
		testutil.Eventually(t, 10*time.Second, fmt.Sprintf("%s on %s", what, p.name), func() bool {
			got, _ := postJSON(t, p, path, body)
			return got == want
		})
	}
	return time.Since(start)
}

// TestFleetModerationOnRedis runs 2 push and 2 pull processes on one
// redis-server, the admin API on one pull node only: settings, bans and
// retractions made there reach every push and pull node within 5 s (the
// nodes read the moderation version every 500 ms; the margin is a busy
// machine's), and
// a push node restarted afterwards enforces them from its first request.
func TestFleetModerationOnRedis(t *testing.T) {
	t.Parallel()
	common := []string{"--redis", redistest.Start(t).URL(), "--seal-delay", fleetSealDelay, "--log-level", "info"}
	pushArgs := append(append([]string{"push"}, loadSender...), common...)
	pushes := []*proc{startProc(t, "push-1", pushArgs...), startProc(t, "push-2", pushArgs...)}
	ops := startProc(t, "pull-ops", append([]string{"pull", "--admin-token", fleetAdminToken}, common...)...)
	pull := startProc(t, "pull-2", append([]string{"pull"}, common...)...)
	for _, p := range append(pushes, ops, pull) {
		p.waitReady()
	}
	if code, _ := adminDo(t, pull, "GET", "/v1/admin/streams", ""); code != http.StatusNotFound {
		t.Fatalf("admin API on a node without --admin-token: %d; want 404", code)
	}

	// Settings: emojis restricted, comments off.
	if code, body := adminDo(t, ops, "PUT", "/v1/admin/streams/match/settings", `{"emojis":["love","fire"],"comments":false}`); code != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", code, body)
	}
	took := reachesAll(t, "emoji restriction", pushes, "/v1/streams/match/reactions", `{"emoji":"like","user":"u9"}`, http.StatusBadRequest)
	took = max(took, reachesAll(t, "comments off", pushes, "/v1/streams/match/comments", `{"text":"hi","user":"u9"}`, http.StatusForbidden))
	if took > 5*time.Second {
		t.Errorf("settings took %v to reach both push nodes; want at most 5 s", took)
	}
	t.Logf("settings reached both push nodes in %v", took.Round(time.Millisecond))

	// A ban.
	start := time.Now()
	if code, body := adminDo(t, ops, "POST", "/v1/admin/streams/match/bans", `{"user":"troll","seconds":600}`); code != http.StatusCreated {
		t.Fatalf("POST ban: %d %s", code, body)
	}
	reachesAll(t, "ban", pushes, "/v1/streams/match/reactions", `{"emoji":"love","user":"troll"}`, http.StatusForbidden)
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("the ban took %v to reach both push nodes; want at most 5 s", took)
	} else {
		t.Logf("the ban reached both push nodes in %v", took.Round(time.Millisecond))
	}
	if code, body := postJSON(t, pushes[0], "/v1/streams/match/reactions", `{"emoji":"love","user":"fan"}`); code != http.StatusAccepted {
		t.Fatalf("a send of another user: %d %s", code, body)
	}

	// A push node restarted enforces the ban and the settings at once.
	pushes[1].terminate()
	pushes[1] = startProc(t, "push-2-again", pushArgs...)
	if code, body := postJSON(t, pushes[1], "/v1/streams/match/reactions", `{"emoji":"love","user":"troll"}`); code != http.StatusForbidden || !strings.Contains(body, `"banned"`) {
		t.Fatalf("the first send of the banned user to a restarted push node: %d %s; want 403 banned", code, body)
	}
	if code, _ := postJSON(t, pushes[1], "/v1/streams/match/reactions", `{"emoji":"like","user":"fan"}`); code != http.StatusBadRequest {
		t.Fatalf("a restarted push node took an emoji the stream does not: %d", code)
	}

	// Retraction: a comment shown by both pull nodes is taken down on both.
	adminDo(t, ops, "PUT", "/v1/admin/streams/match/settings", `{"comments":true}`)
	reachesAll(t, "comments on", pushes, "/v1/streams/match/comments", `{"text":"spam spam","user":"spammer"}`, http.StatusAccepted)
	var id string
	for _, p := range []*proc{ops, pull} {
		testutil.Eventually(t, 10*time.Second, p.name+" shows the comment with an id", func() bool {
			got := commentIDs(t, p, "match", "spam spam")
			if len(got) > 0 {
				id = got[0]
			}
			return id != ""
		})
	}
	// The comment's second is sealed: a replay shows it, from either node.
	replay := fmt.Sprintf("/v1/streams/match/history?from=%d&to=%d", time.Now().Unix()-300, time.Now().Unix()+60)
	for _, p := range []*proc{ops, pull} {
		testutil.Eventually(t, 10*time.Second, p.name+" replays the comment", func() bool {
			return strings.Contains(historyIDs(t, p, replay), " "+id+" ")
		})
	}
	start = time.Now()
	if code, body := adminDo(t, ops, "DELETE", "/v1/admin/streams/match/comments/"+id, ""); code != http.StatusAccepted {
		t.Fatalf("DELETE comment: %d %s", code, body)
	}
	for _, p := range []*proc{ops, pull} {
		testutil.Eventually(t, 10*time.Second, p.name+" lists the retraction", func() bool {
			return retracted(t, p, "match", id)
		})
	}
	t.Logf("the retraction reached both pull nodes' polls in %v", time.Since(start).Round(time.Millisecond))
	// Replays no longer show it.
	for _, p := range []*proc{ops, pull} {
		if got := historyIDs(t, p, replay); strings.Contains(got, " "+id+" ") {
			t.Fatalf("%s still replays the deleted comment %s: %s", p.name, id, got)
		}
	}

	// Closed: sends refused, polls still answer.
	adminDo(t, ops, "PUT", "/v1/admin/streams/match/settings", `{"closed":true}`)
	reachesAll(t, "closed", pushes, "/v1/streams/match/reactions", `{"emoji":"love","user":"fan"}`, http.StatusGone)
	if code, _ := pull.get("/v1/streams/match/reactions"); code != http.StatusOK {
		t.Fatalf("a poll of a closed stream: %d; want 200", code)
	}
	logs := ops.logs.String()
	for _, want := range []string{"who=ops action=put_settings", "who=ops action=ban", "who=ops action=retract_comment"} {
		if !strings.Contains(logs, want) {
			t.Errorf("the admin node's log lacks %q", want)
		}
	}
}

// pollBuckets returns the buckets of the last minute of a stream.
func pollBuckets(t *testing.T, p *proc, stream string) []pollBucket {
	t.Helper()
	var pb pollAnswer
	code, body := p.get(fmt.Sprintf("/v1/streams/%s/reactions?since=%d", stream, time.Now().Unix()-60))
	if code != http.StatusOK {
		return nil
	}
	if err := json.Unmarshal([]byte(body), &pb); err != nil {
		t.Fatalf("poll %s: %v", p.name, err)
	}
	return pb.Buckets
}

func commentIDs(t *testing.T, p *proc, stream, text string) []string {
	var ids []string
	for _, b := range pollBuckets(t, p, stream) {
		for _, m := range b.M {
			if m.X == text && m.ID != "" {
				ids = append(ids, m.ID)
			}
		}
	}
	return ids
}

func retracted(t *testing.T, p *proc, stream, id string) bool {
	for _, b := range pollBuckets(t, p, stream) {
		for _, r := range b.R {
			if r == id {
				return true
			}
		}
	}
	return false
}

// historyIDs returns the ids of the comments of a history answer, each
// between spaces.
func historyIDs(t *testing.T, p *proc, path string) string {
	t.Helper()
	code, body := p.get(path)
	if code != http.StatusOK {
		t.Fatalf("GET %s from %s: %d %s", path, p.name, code, body)
	}
	var h pollAnswer
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("history from %s: %v", p.name, err)
	}
	ids := " "
	for _, b := range h.Buckets {
		for _, m := range b.M {
			ids += m.ID + " "
		}
	}
	return ids
}
