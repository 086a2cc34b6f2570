package server

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emojicast/emojicast/admin"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/pull"
	"github.com/emojicast/emojicast/push"
	"github.com/emojicast/emojicast/store"
)

const adminSecret = "s3cret-admin-token-0123"

// adminNode is a node serving the admin API with tokens "ops" and a bare
// one, whose push node follows the moderation rules every 10 ms.
func adminNode(t *testing.T, log *testutil.SyncBuffer, mods ...func(*nodeConfig)) *node {
	t.Helper()
	var st *store.Memory
	var rules *moderation.Rules
	n := startNode(t, append(mods, func(c *nodeConfig) {
		c.pushOpts = func(o *push.Options) {
			st = o.Targets[0].Store.(*store.Memory)
			var err error
			rules, err = moderation.New(moderation.Options{Store: st, Interval: 10 * time.Millisecond, Logger: quiet, Registerer: c.reg})
			if err != nil {
				t.Fatal(err)
			}
			rules.Start()
			t.Cleanup(rules.Stop)
			o.Moderation = rules
			c.pullOpts = func(o *pull.Options) { o.Moderation = rules }
			tokens, err := admin.ParseTokens("ops:" + adminSecret + ", other-secret-0123456789")
			if err != nil {
				t.Fatal(err)
			}
			a, err := admin.New(admin.Options{Tokens: tokens, Store: st, Clock: c.clk, Registerer: c.reg,
				Logger: slog.New(slog.NewTextHandler(log, nil))})
			if err != nil {
				t.Fatal(err)
			}
			c.server.Admin = a.Handle
		}
	})...)
	return n
}

func (n *node) admin(method, path, body string) response {
	n.t.Helper()
	h := map[string]string{"Authorization": "Bearer " + adminSecret}
	if body != "" {
		h["Content-Type"] = "application/json"
	}
	return n.do(method, path, body, h)
}

// wantError checks an answer's status and JSON error code.
func wantError(t *testing.T, what string, r response, status int, code string) {
	t.Helper()
	var e struct{ Error struct{ Code string } }
	if r.status != status || json.Unmarshal(r.body, &e) != nil || e.Error.Code != code {
		t.Fatalf("%s: %d %s; want %d %s", what, r.status, r.body, status, code)
	}
}

// eventuallyStatus retries a request until it answers want: moderation
// reaches push nodes within their refresh interval.
func eventuallyStatus(t *testing.T, what string, want int, do func() int) {
	t.Helper()
	var got int
	testutil.Eventually(t, 2*time.Second, what, func() bool { got = do(); return got == want })
}

// TestAdminAPIIsOffWithoutTokens: with no admin token configured the
// routes do not exist.
func TestAdminAPIIsOffWithoutTokens(t *testing.T) {
	n := startNode(t)
	for _, p := range []string{"/v1/admin/streams", "/v1/admin/streams/a/settings"} {
		wantError(t, p, n.do("GET", p, "", map[string]string{"Authorization": "Bearer " + adminSecret}), 404, "not_found")
	}
}

func TestAdminAPIRefusesWrongTokens(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	for _, h := range []map[string]string{
		nil,
		{"Authorization": "Bearer wrong-token-0123456789"},
		{"Authorization": "Basic " + adminSecret},
		{"Authorization": "Bearer " + adminSecret + "x"},
	} {
		wantError(t, "GET streams with "+h["Authorization"], n.do("GET", "/v1/admin/streams", "", h), 401, "unauthorized")
	}
	for _, tok := range []string{adminSecret, "other-secret-0123456789"} {
		if r := n.do("GET", "/v1/admin/streams", "", map[string]string{"Authorization": "bearer " + tok}); r.status != 200 {
			t.Fatalf("GET streams with a valid token: %d %s", r.status, r.body)
		}
	}
	if got := counterValue(t, n, `emojicast_admin_unauthorized_total`); got < 4 {
		t.Fatalf("emojicast_admin_unauthorized_total = %v; want at least 4", got)
	}
}

func TestAdminAPIRefusesBadInput(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	for _, c := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/v1/admin/streams?top=0", "", 400, "invalid_top"},
		{"GET", "/v1/admin/streams?top=1001", "", 400, "invalid_top"},
		{"GET", "/v1/admin/streams?top=x", "", 400, "invalid_top"},
		{"GET", "/v1/admin/streams/bad%20id", "", 400, "invalid_stream"},
		{"GET", "/v1/admin/nothing", "", 404, "not_found"},
		{"POST", "/v1/admin/streams", "", 405, "method_not_allowed"},
		{"GET", "/v1/admin/streams/a/settings", "", 405, "method_not_allowed"},
		{"PUT", "/v1/admin/streams/a/settings", `{"closed":"yes"}`, 400, "invalid_body"},
		{"PUT", "/v1/admin/streams/a/settings", `{"colsed":true}`, 400, "invalid_body"},
		{"PUT", "/v1/admin/streams/a/settings", `{"closed":true} {}`, 400, "invalid_body"},
		{"PUT", "/v1/admin/streams/a/settings", `{"emojis":["love","nope"]}`, 400, "invalid_settings"},
		{"PUT", "/v1/admin/streams/a/settings", `{"emojis":["love","love"]}`, 400, "invalid_settings"},
		{"PUT", "/v1/admin/streams/a/settings", `{"slow_mode_s":-1}`, 400, "invalid_settings"},
		{"PUT", "/v1/admin/streams/a/settings", `{"comment_budget":100000}`, 400, "invalid_settings"},
		{"POST", "/v1/admin/streams/a/bans", `{"user":"u1","seconds":0}`, 400, "invalid_seconds"},
		{"POST", "/v1/admin/streams/a/bans", `{"user":"u 1","seconds":10}`, 400, "invalid_user"},
		{"DELETE", "/v1/admin/streams/a/bans/u1", "", 404, "not_found"},
		{"DELETE", "/v1/admin/streams/a/comments/a%20b", "", 400, "invalid_comment"},
	} {
		wantError(t, c.method+" "+c.path+" "+c.body, n.admin(c.method, c.path, c.body), c.status, c.code)
	}
	r := n.do("PUT", "/v1/admin/streams/a/settings", `{"closed":true}`, map[string]string{"Authorization": "Bearer " + adminSecret, "Content-Type": "text/plain"})
	wantError(t, "PUT settings as text/plain", r, 415, "unsupported_media_type")
}

// TestAdminSettingsAndBansReachSends: every setting and ban takes effect
// on sends and comments, polls keep working on a closed stream, and each
// action is logged with the token's label and counted.
func TestAdminSettingsAndBansReachSends(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	comment := func(user, text string) int { s, _ := n.comment("s", user, text); return s }

	r := n.admin("PUT", "/v1/admin/streams/s/settings", `{"emojis":["love","fire"],"comments":false}`)
	var got admin.SettingsJSON
	if r.status != 200 || json.Unmarshal(r.body, &got) != nil {
		t.Fatalf("PUT settings: %d %s", r.status, r.body)
	}
	want := admin.SettingsJSON{Emojis: []string{"love", "fire"}, Comments: false}
	if strings.Join(got.Emojis, ",") != "love,fire" || got.Comments || got.Closed || got.SlowModeS != 0 {
		t.Fatalf("PUT settings answered %+v; want %+v", got, want)
	}
	eventuallyStatus(t, "a send of an emoji the stream does not take", 400, func() int { return n.send("s", "u1", "like", 1) })
	wantError(t, "send like", n.do("POST", "/v1/streams/s/reactions", `{"emoji":"like","user":"u1"}`, map[string]string{"Content-Type": "application/json"}), 400, "unknown_emoji")
	if s := n.send("s", "u1", "fire", 1); s != 202 {
		t.Fatalf("send fire: %d; want 202", s)
	}
	if w := n.watch("s", "v"); strings.Join(w.Allowed, ",") != "love,fire" || len(w.Emojis) != 8 {
		t.Fatalf("watch lists emojis %v, allowed %v; want the whole set, and the stream's love and fire allowed", w.Emojis, w.Allowed)
	}
	if w := n.watch("other", "v"); len(w.Emojis) != 8 || w.Allowed != nil {
		t.Fatalf("watch of another stream lists %d emojis, allowed %v; want the whole set, none restricted", len(w.Emojis), w.Allowed)
	}
	if s := n.send("other", "u1", "like", 1); s != 202 {
		t.Fatalf("send like to another stream: %d; want 202", s)
	}
	wantError(t, "comment with comments off", n.do("POST", "/v1/streams/s/comments", `{"text":"hi","user":"u1"}`, map[string]string{"Content-Type": "application/json"}), 403, "comments_off")

	// Slow mode: a second comment within 5 s is refused, whatever the
	// user's own rate allows.
	n.admin("PUT", "/v1/admin/streams/s/settings", `{"comments":true,"slow_mode_s":5}`)
	eventuallyStatus(t, "comments back on", 202, func() int { return comment("u1", "first") })
	r = n.do("POST", "/v1/streams/s/comments", `{"text":"second","user":"u1"}`, map[string]string{"Content-Type": "application/json"})
	wantError(t, "a comment within slow mode", r, 429, "rate_limited")
	if ra, _ := strconv.Atoi(r.header.Get("Retry-After")); ra < 1 || ra > 5 {
		t.Fatalf("slow mode Retry-After %q; want 1 to 5", r.header.Get("Retry-After"))
	}
	// Open mode: ids are self-service, so slow mode binds the address
	// group; someone at another address still comments.
	if s := comment("u2", "same address"); s != 429 {
		t.Fatalf("another id's comment from the same address: %d; want 429", s)
	}
	if s := postFrom(t, dialFrom(t, "127.0.0.52", n.srv.Addr()), "", "/v1/streams/s/comments", `{"text":"someone else","user":"u2"}`); s != 202 {
		t.Fatalf("another address's comment: %d; want 202", s)
	}
	n.clk.Add(5 * time.Second)
	if s := comment("u1", "after the period"); s != 202 {
		t.Fatalf("a comment after the slow-mode period: %d; want 202", s)
	}

	// Bans: sends and comments of the banned user only, until lifted or over.
	r = n.admin("POST", "/v1/admin/streams/s/bans", `{"user":"u1","seconds":600}`)
	if r.status != 201 {
		t.Fatalf("POST ban: %d %s", r.status, r.body)
	}
	eventuallyStatus(t, "a banned user's send", 403, func() int { return n.send("s", "u1", "love", 1) })
	wantError(t, "banned send", n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u1"}`, map[string]string{"Content-Type": "application/json"}), 403, "banned")
	wantError(t, "banned comment", n.do("POST", "/v1/streams/s/comments", `{"text":"hi","user":"u1"}`, map[string]string{"Content-Type": "application/json"}), 403, "banned")
	if s := n.send("s", "u2", "love", 1); s != 202 {
		t.Fatalf("another user's send: %d; want 202", s)
	}
	if s := n.send("other", "u1", "love", 1); s != 202 {
		t.Fatalf("the banned user's send to another stream: %d; want 202", s)
	}
	var st admin.StreamJSON
	if r := n.admin("GET", "/v1/admin/streams/s", ""); r.status != 200 || json.Unmarshal(r.body, &st) != nil || len(st.Bans) != 1 || st.Bans[0].User != "u1" || st.Settings.SlowModeS != 5 {
		t.Fatalf("GET stream: %d %s; want its settings and u1's ban", r.status, r.body)
	}
	if r := n.admin("DELETE", "/v1/admin/streams/s/bans/u1", ""); r.status != 204 {
		t.Fatalf("DELETE ban: %d %s", r.status, r.body)
	}
	eventuallyStatus(t, "an unbanned user's send", 202, func() int { return n.send("s", "u1", "love", 1) })
	n.admin("POST", "/v1/admin/streams/s/bans", `{"user":"u3","seconds":10}`)
	eventuallyStatus(t, "a banned user's send", 403, func() int { return n.send("s", "u3", "love", 1) })
	n.clk.Add(11 * time.Second)
	if s := n.send("s", "u3", "love", 1); s != 202 {
		t.Fatalf("a send after the ban ended: %d; want 202", s)
	}

	// Closed: sends and comments 410, polls still answer.
	n.admin("PUT", "/v1/admin/streams/s/settings", `{"closed":true}`)
	eventuallyStatus(t, "a send to a closed stream", 410, func() int { return n.send("s", "u2", "love", 1) })
	wantError(t, "comment on a closed stream", n.do("POST", "/v1/streams/s/comments", `{"text":"hi","user":"u4"}`, map[string]string{"Content-Type": "application/json"}), 410, "stream_closed")
	n.poll("s", nil)

	if got := counterValue(t, n, `emojicast_admin_actions_total{action="ban",result="ok"}`); got < 2 {
		t.Fatalf("bans counted %v; want 2", got)
	}
	if got := counterValue(t, n, `emojicast_moderation_refused_total{reason="banned"}`); got < 3 {
		t.Fatalf("refusals for bans counted %v; want at least 3", got)
	}
	logged := log.String()
	for _, want := range []string{"who=ops action=ban", "who=ops action=unban", "who=ops action=put_settings", "user=u1", "stream=s"} {
		if !strings.Contains(logged, want) {
			t.Fatalf("the admin log lacks %q:\n%s", want, logged)
		}
	}
}

// TestAdminRetractsComments: comments carry ids in poll buckets; a
// deleted one is listed as a retraction in a later bucket.
func TestAdminRetractsComments(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	type pollComments struct {
		Now     int64 `json:"now"`
		Buckets []struct {
			T int64 `json:"t"`
			M []struct {
				U, X, ID string
			} `json:"m"`
			R []string `json:"r"`
		} `json:"buckets"`
	}
	poll := func(since int64) pollComments {
		t.Helper()
		r := n.do("GET", "/v1/streams/s/reactions?since="+strconv.FormatInt(since, 10), "", nil)
		var pb pollComments
		if err := json.Unmarshal(r.body, &pb); err != nil {
			t.Fatalf("poll: %v: %s", err, r.body)
		}
		return pb
	}
	w := n.watch("s", "viewer")
	n.comment("s", "spammer", "buy now")
	n.comment("s", "fan", "what a goal")
	n.step()
	n.step()
	first := poll(w.Since)
	var spamID string
	var ids int
	for _, b := range first.Buckets {
		for _, m := range b.M {
			if m.ID != "" {
				ids++
			}
			if m.X == "buy now" {
				spamID = m.ID
			}
		}
	}
	if spamID == "" || ids != 2 {
		t.Fatalf("poll buckets %+v; want two comments with ids", first.Buckets)
	}
	if r := n.admin("DELETE", "/v1/admin/streams/s/comments/"+spamID, ""); r.status != 202 {
		t.Fatalf("DELETE comment: %d %s", r.status, r.body)
	}
	n.step()
	n.step()
	next := poll(first.Now)
	var retracted []string
	for _, b := range next.Buckets {
		retracted = append(retracted, b.R...)
	}
	if len(retracted) != 1 || retracted[0] != spamID {
		t.Fatalf("buckets after %d: %+v; want one retracting %s", first.Now, next.Buckets, spamID)
	}
	if !strings.Contains(log.String(), "action=retract_comment") || !strings.Contains(log.String(), "comment="+spamID) {
		t.Fatalf("the retraction is not logged:\n%s", log.String())
	}
}

// TestAdminListsBusiestStreams: GET /v1/admin/streams lists what the pull
// nodes report, busiest first.
func TestAdminListsBusiestStreams(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	for i := range 3 {
		n.watch("busy", "v"+strconv.Itoa(i))
	}
	n.watch("quiet", "v")
	var top struct {
		Streams []store.StreamStats `json:"streams"`
	}
	testutil.Eventually(t, 10*time.Second, "both streams listed", func() bool {
		n.send("busy", "u", "love", 2)
		n.step()
		for range 20 {
			n.poll("busy", nil)
		}
		n.poll("quiet", nil)
		r := n.admin("GET", "/v1/admin/streams?top=10", "")
		if r.status != http.StatusOK || json.Unmarshal(r.body, &top) != nil {
			t.Fatalf("GET streams: %d %s", r.status, r.body)
		}
		return len(top.Streams) == 2 && top.Streams[0].ID == "busy" && top.Streams[0].TapsPerS > 0
	})
	if s := top.Streams[0]; s.Sample != 1 || s.Viewers < top.Streams[1].Viewers {
		t.Fatalf("streams %+v; want busy first, sample 1", top.Streams)
	}
	r := n.admin("GET", "/v1/admin/streams?top=1", "")
	if json.Unmarshal(r.body, &top) != nil || len(top.Streams) != 1 {
		t.Fatalf("top=1: %s", r.body)
	}
}

// TestAdminThrottlesWrongTokens: an address that sent a few wrong admin
// tokens is answered 429 (Retry-After, the JSON error) without its token
// being checked, the right one included, until its allowance refills; one
// that sends the right token is never held back.
func TestAdminThrottlesWrongTokens(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	wrong := map[string]string{"Authorization": "Bearer wrong-token-0123456789"}
	limited := counterValue(t, n, `emojicast_http_client_ip_limited_total{limit="admin"}`)
	for range 50 {
		if r := n.admin("GET", "/v1/admin/streams", ""); r.status != 200 {
			t.Fatalf("GET streams with the right token: %d %s", r.status, r.body)
		}
	}
	for i := range adminGuessBurst {
		wantError(t, "wrong token "+strconv.Itoa(i), n.do("GET", "/v1/admin/streams", "", wrong), 401, "unauthorized")
	}
	for i := range 20 {
		r := n.do("GET", "/v1/admin/streams", "", wrong)
		wantError(t, "wrong token past the allowance "+strconv.Itoa(i), r, 429, "rate_limited")
		if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
			t.Fatalf("429 with Retry-After %q; want 1 to 60 seconds", r.header.Get("Retry-After"))
		}
	}
	wantError(t, "the right token from a throttled address", n.admin("GET", "/v1/admin/streams", ""), 429, "rate_limited")
	// The allowance refills at a few guesses a minute.
	n.clk.Add(time.Minute)
	wantError(t, "a wrong token a minute later", n.do("GET", "/v1/admin/streams", "", wrong), 401, "unauthorized")
	if r := n.admin("GET", "/v1/admin/streams", ""); r.status != 200 {
		t.Fatalf("GET streams with the right token a minute later: %d %s", r.status, r.body)
	}
	if got := counterValue(t, n, `emojicast_http_client_ip_limited_total{limit="admin"}`) - limited; got != 21 {
		t.Fatalf(`emojicast_http_client_ip_limited_total{limit="admin"} grew by %v; want 21`, got)
	}
}
