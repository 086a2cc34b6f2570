package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/internal/testutil"
)

// One contract, many encodings. TestConformance plays the scenarios of
// the table below on one real 'emojicast serve' and reads each back
// through every decoder of a stream: API v1's JSON body and the compact
// body read by the contract (docs/api.md) alone, the Go client asking for
// either, the JavaScript client under Node asking for either, and the web
// page in Chromium. Every decoder must show what the store holds: the
// counts of each second as the store's history has them, the comments and
// retractions as the v1 body lists them, and the gap exactly when the
// cursor is older than the window.
//
//	scenario                 | v1 | compact | Go v1, compact | JS v1, compact | page
//	restricted emoji set     | x  | x       | x              | x              | x (and its buttons)
//	a retraction             | x  | x       | x              | x              | x (taken down)
//	sampling at k >= 10      | x  | x       | x              | x              | x
//	a closed stream          | x  | x       | x              | x              | x
//	a 40 s cut and catch-up  | x  | x       | x              | x              | x (offline 40 s)
//	the window's edge, gap   | x  | x       | x              | x              | x (offline 66 s: says so)
//	a replayed hour          | x (history)  | Go History     | (no history API in the package) | x (replay)
//
// (The restricted row failed before watch listed the whole set: both
// clients decoded the compact counts against the shorter allowed list and
// showed love x5, fire x20 as fire:5.)

// reading is one decoder's reading of a poll answer, in one shape.
type reading struct {
	Now     int64
	Gap     bool
	Sample  float64
	Buckets map[int64]readingBucket
}

type readingBucket struct {
	C     map[string]int64
	Burst []string
	M     []readingComment
	R     []string
}

type readingComment struct{ U, X, ID string }

func (a pollAnswer) reading() reading {
	v := reading{Now: a.Now, Gap: a.Gap, Sample: a.Sample, Buckets: map[int64]readingBucket{}}
	for _, b := range a.Buckets {
		vb := readingBucket{C: b.C, Burst: sortedOrNil(b.Burst), R: b.R}
		for _, m := range b.M {
			vb.M = append(vb.M, readingComment{m.U, m.X, m.ID})
		}
		v.Buckets[b.T] = vb
	}
	return v
}

func sortedOrNil(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Sorted(slices.Values(s))
}

// readCompact reads a compact body as docs/api.md describes it, with the
// emoji list watch gave.
func readCompact(t *testing.T, body []byte, emojis []string) reading {
	t.Helper()
	var top []json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || len(top) < 5 {
		t.Fatalf("compact body %s: %v", body, err)
	}
	v := reading{Buckets: map[int64]readingBucket{}}
	var raw [][]json.RawMessage
	for i, dst := range []any{&v.Now, nil, &v.Sample, nil, &raw} {
		if dst != nil {
			if err := json.Unmarshal(top[i], dst); err != nil {
				t.Fatalf("compact body field %d: %v", i, err)
			}
		}
	}
	v.Gap = len(top) > 5 && string(top[5]) == "1"
	for _, r := range raw {
		var sec, burst int64
		var counts []int64
		var said, ids, retracted []string
		for i, dst := range []any{&sec, &burst, &counts, &said, &ids, &retracted} {
			if i < len(r) {
				if err := json.Unmarshal(r[i], dst); err != nil {
					t.Fatalf("compact bucket field %d: %v", i, err)
				}
			}
		}
		vb := readingBucket{C: map[string]int64{}, R: retracted}
		for i, n := range counts {
			name := fmt.Sprintf("index %d past the list", i)
			if i < len(emojis) {
				name = emojis[i]
			}
			if n > 0 {
				vb.C[name] = n
			}
			if burst&(1<<i) != 0 {
				vb.Burst = append(vb.Burst, name)
			}
		}
		vb.Burst = sortedOrNil(vb.Burst)
		for i := 0; i+1 < len(said); i += 2 {
			vb.M = append(vb.M, readingComment{said[i], said[i+1], ids[i/2]})
		}
		v.Buckets[sec] = vb
	}
	return v
}

// conformance is the service under test and what the test knows of it.
type conformance struct {
	t    *testing.T
	srv  *proc
	node string
}

// watchEmojis returns the emoji list watch gives for stream, and its cursor.
func (c *conformance) watch(stream string) (emojis []string, since int64) {
	var w struct {
		Since  int64
		Emojis []struct{ ID string }
	}
	getJSON(c.t, c.srv.url+"/v1/streams/"+stream+"/watch?user=conformance", &w)
	for _, e := range w.Emojis {
		emojis = append(emojis, e.ID)
	}
	return emojis, w.Since
}

func (c *conformance) get(path string) []byte {
	c.t.Helper()
	code, body := c.srv.get(path)
	if code != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", path, code, body)
	}
	return []byte(body)
}

// decoders reads stream from cursor since through every decoder but the
// page, by name.
func (c *conformance) decoders(stream string, since int64) map[string]reading {
	c.t.Helper()
	out := map[string]reading{}
	var a pollAnswer
	if err := json.Unmarshal(c.get(fmt.Sprintf("/v1/streams/%s/reactions?since=%d", stream, since)), &a); err != nil {
		c.t.Fatal(err)
	}
	out["v1"] = a.reading()
	emojis, _ := c.watch(stream)
	out["compact"] = readCompact(c.t, c.get(fmt.Sprintf("/v1/streams/%s/reactions?since=%d&v=2", stream, since)), emojis)
	for name, body := range map[string]client.BodyFormat{"go v1": client.BodyV1, "go compact": client.BodyCompact} {
		out[name] = c.goClient(stream, since, body)
	}
	cases, _ := json.Marshal([]map[string]any{{"stream": stream, "since": since, "compact": false}, {"stream": stream, "since": since, "compact": true}})
	cmd := exec.Command(c.node, filepath.Join("testdata", "conformance.mjs"), c.srv.url, string(cases))
	raw, err := cmd.Output()
	if err != nil {
		c.t.Fatalf("node conformance.mjs: %v\n%s", err, raw)
	}
	var js []pollAnswer
	if err := json.Unmarshal(raw, &js); err != nil || len(js) != 2 {
		c.t.Fatalf("node conformance.mjs printed %s: %v", raw, err)
	}
	out["js v1"], out["js compact"] = js[0].reading(), js[1].reading()
	return out
}

// goClient reads stream from cursor since with the Go client's own poll
// loop: its first update.
func (c *conformance) goClient(stream string, since int64, body client.BodyFormat) reading {
	c.t.Helper()
	cl, err := client.New(client.Options{Server: c.srv.url, Body: body, PollJitter: 0})
	if err != nil {
		c.t.Fatal(err)
	}
	defer cl.CloseIdleConnections()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := cl.Watch(ctx, stream)
	if err != nil {
		c.t.Fatal(err)
	}
	s.Since, s.NextMS = since, 1
	var u client.Update
	err = s.Run(ctx, func(got client.Update) { u = got; cancel() })
	if u.Now == 0 {
		c.t.Fatalf("Go client on %s from %d: no update (%v)", stream, since, err)
	}
	v := reading{Now: u.Now, Gap: u.Gap, Sample: u.Sample, Buckets: map[int64]readingBucket{}}
	for _, b := range u.Buckets {
		vb := readingBucket{C: b.Counts, Burst: sortedOrNil(b.Burst), R: b.Retracted}
		for _, m := range b.Comments {
			vb.M = append(vb.M, readingComment{m.User, m.Text, m.ID})
		}
		v.Buckets[b.T] = vb
	}
	return v
}

// history is the store's record of stream's seconds [from, to]: counts
// per second, as the history answer has them.
func (c *conformance) history(stream string, from, to int64) (sealed int64, counts map[int64]map[string]int64) {
	c.t.Helper()
	var h struct {
		To      int64
		Buckets []struct {
			T int64
			C map[string]int64
		}
	}
	if err := json.Unmarshal(c.get(fmt.Sprintf("/v1/streams/%s/history?from=%d&to=%d", stream, from, to)), &h); err != nil {
		c.t.Fatal(err)
	}
	counts = map[int64]map[string]int64{}
	for _, b := range h.Buckets {
		if len(b.C) > 0 {
			counts[b.T] = b.C
		}
	}
	return h.To, counts
}

// check compares every decoder's reading of stream from since with the
// store's history and the v1 body's comments, and returns the readings.
func (c *conformance) check(row, stream string, since int64) map[string]reading {
	c.t.Helper()
	views := c.decoders(stream, since)
	newest := int64(0)
	for _, v := range views {
		newest = max(newest, v.Now)
	}
	testutil.Eventually(c.t, 10*time.Second, "history sealed through "+strconv.FormatInt(newest, 10), func() bool {
		sealed, _ := c.history(stream, newest-3599, newest)
		return sealed >= newest
	})
	_, store := c.history(stream, max(since+1, newest-3599), newest)
	ref := views["v1"]
	for name, v := range views {
		first := since + 1
		if v.Gap {
			first = v.Now - 59
		}
		if gap := v.Now-since > 60; v.Gap != gap {
			c.t.Errorf("%s, %s: gap %v with cursor %d and now %d; want %v", row, name, v.Gap, since, v.Now, gap)
		}
		want := map[int64]map[string]int64{}
		for sec, cs := range store {
			if sec >= first && sec <= v.Now {
				want[sec] = cs
			}
		}
		got := map[int64]map[string]int64{}
		for sec, b := range v.Buckets {
			if len(b.C) > 0 {
				got[sec] = b.C
			}
		}
		if !reflect.DeepEqual(got, want) {
			c.t.Errorf("%s, %s: counts %v; want the store's %v", row, name, got, want)
		}
		for sec, b := range v.Buckets {
			r, ok := ref.Buckets[sec]
			if sec > min(v.Now, ref.Now) {
				continue
			}
			if !ok || !reflect.DeepEqual(b.M, r.M) || !reflect.DeepEqual(b.R, r.R) || !reflect.DeepEqual(b.Burst, r.Burst) {
				c.t.Errorf("%s, %s: second %d has comments %v, retractions %v, burst %v; v1 has %v, %v, %v", row, name, sec, b.M, b.R, b.Burst, r.M, r.R, r.Burst)
			}
		}
	}
	return views
}

// storeTotal sums the store's counts of stream after second since, once
// every second sent to before the call is sealed.
func (c *conformance) storeTotal(stream string, since int64) map[string]int64 {
	c.t.Helper()
	sent := time.Now().Unix()
	var newest int64
	testutil.Eventually(c.t, 10*time.Second, "history sealed", func() bool {
		var a pollAnswer
		_ = json.Unmarshal(c.get("/v1/streams/"+stream+"/reactions"), &a)
		newest = a.Now
		sealed, _ := c.history(stream, since+1, newest)
		return newest > sent && sealed >= newest
	})
	_, store := c.history(stream, since+1, newest)
	total := map[string]int64{}
	for _, cs := range store {
		for e, n := range cs {
			total[e] += n
		}
	}
	return total
}

func (c *conformance) send(stream, user, emoji string, count int) {
	c.t.Helper()
	if code, body := postJSON(c.t, c.srv, "/v1/streams/"+stream+"/reactions", fmt.Sprintf(`{"emoji":%q,"count":%d,"user":%q}`, emoji, count, user)); code != http.StatusAccepted {
		c.t.Fatalf("send to %s: %d %s", stream, code, body)
	}
}

// livePage opens the web viewer on stream and returns it with the cursor
// it started from.
func livePage(t *testing.T, browserCtx context.Context, base, stream string) (*page, int64) {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browserCtx)
	t.Cleanup(cancel)
	p := newPage(t, ctx, stream)
	p.do(
		chromedp.Navigate(base+"/?stream="+stream+"&user=page-"+stream),
		chromedp.WaitVisible(chromedp.CSS(`#stage[data-state="live"]`)),
	)
	var cursor int64
	testutil.Eventually(t, 10*time.Second, stream+" page has a cursor", func() bool {
		cursor, _ = strconv.ParseInt(eval[string](p, `document.getElementById("stage").dataset.cursor || "0"`), 10, 64)
		return cursor > 0
	})
	return p, cursor
}

func TestConformance(t *testing.T) {
	t.Parallel()
	c := &conformance{t: t, node: testutil.NeedsProgram(t, "node")}
	c.srv = startProc(t, "serve", "serve", "--admin-token", fleetAdminToken, "--target-sends", "5",
		"--busy-next-ms", "1000", "--quiet-next-ms", "1000", "--quiet-max-next-ms", "1000",
		"--ip-viewers", "1000000", "--ip-poll-rate", "1000000", "--ip-poll-burst", "1000000",
		"--ip-watch-rate", "1000000", "--ip-watch-burst", "1000000", "--ip-send-rate", "1000000", "--ip-send-burst", "1000000")
	c.srv.waitReady()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	browserCtx := browser(t, ctx)

	// A stream restricted to two emojis, as an operator sets it.
	if code, body := adminDo(t, c.srv, "PUT", "/v1/admin/streams/restricted/settings", `{"emojis":["love","fire"]}`); code != http.StatusOK {
		t.Fatalf("PUT settings: %d %s", code, body)
	}
	pages := map[string]*page{}
	starts := map[string]int64{}
	for _, s := range []string{"restricted", "retract", "sampled", "closed", "cut"} {
		pages[s], starts[s] = livePage(t, browserCtx, c.srv.url, s)
	}
	testutil.Eventually(t, 10*time.Second, "the restricted page offers its two emojis", func() bool {
		return eval[string](pages["restricted"], `[...document.querySelectorAll("#buttons button")].map((b) => b.dataset.emoji).join(",")`) == "love,fire"
	})
	// A second page of the cut stream loses the network for longer than
	// the window: it must say seconds were lost.
	gapPage, _ := livePage(t, browserCtx, c.srv.url, "cut")
	setOffline(t, gapPage, true)
	setOffline(t, pages["cut"], true)
	cutAt := time.Now()

	// The cut stream gets a tap a second while its page is offline, and
	// on, so a 40 s catch-up finds something in most seconds.
	var steady sync.WaitGroup
	steadyStop := make(chan struct{})
	steady.Go(func() {
		for {
			select {
			case <-steadyStop:
				return
			case <-time.After(time.Second):
				postJSON(t, c.srv, "/v1/streams/cut/reactions", `{"emoji":"clap","user":"steady"}`)
			}
		}
	})
	defer func() {
		select {
		case <-steadyStop:
		default:
			close(steadyStop)
		}
		steady.Wait()
	}()

	c.send("restricted", "r1", "love", 5)
	c.send("restricted", "r2", "fire", 20)

	c.send("retract", "c1", "love", 3)
	if code, body := postJSON(t, c.srv, "/v1/streams/retract/comments", `{"text":"take me down","user":"c1"}`); code != http.StatusAccepted {
		t.Fatalf("comment: %d %s", code, body)
	}
	var id string
	testutil.Eventually(t, 10*time.Second, "the comment is published", func() bool {
		ids := commentIDs(t, c.srv, "retract", "take me down")
		if len(ids) > 0 {
			id = ids[0]
		}
		return id != ""
	})
	if code, body := adminDo(t, c.srv, "DELETE", "/v1/admin/streams/retract/comments/"+id, ""); code != http.StatusAccepted {
		t.Fatalf("DELETE comment: %d %s", code, body)
	}

	c.send("closed", "k1", "wow", 4)
	if code, body := adminDo(t, c.srv, "PUT", "/v1/admin/streams/closed/settings", `{"closed":true}`); code != http.StatusOK {
		t.Fatalf("closing: %d %s", code, body)
	}
	testutil.Eventually(t, 5*time.Second, "the closed stream refuses sends", func() bool {
		code, _ := postJSON(t, c.srv, "/v1/streams/closed/reactions", `{"emoji":"wow","user":"k1"}`)
		return code == http.StatusGone
	})

	// Sampling: honest Go clients tap until the fleet forwards one tap in
	// 10 or fewer, and keep tapping while the decoders read the sample.
	sampled := c.sample()
	for name, v := range sampled {
		if v.Sample > 0.1 || v.Sample <= 0 {
			t.Errorf("sampling, %s: sample %v; want at most 0.1", name, v.Sample)
		}
	}

	for _, row := range []struct{ name, stream string }{
		{"restricted emoji set", "restricted"}, {"a retraction", "retract"}, {"sampling at k >= 10", "sampled"}, {"a closed stream", "closed"},
	} {
		views := c.check(row.name, row.stream, starts[row.stream])
		if row.stream == "restricted" {
			if got := views["go compact"].Buckets; !hasCounts(got, map[string]int64{"love": 5, "fire": 20}) {
				t.Errorf("restricted: the Go client shows %v; want love 5, fire 20", got)
			}
		}
		if row.stream == "retract" {
			if got := views["js compact"]; !retractedIn(got, id) {
				t.Errorf("a retraction: the JS client does not list %s as taken down: %v", id, got.Buckets)
			}
		}
	}

	// The page: what it received adds up to what the store holds.
	for s, p := range pages {
		if s == "cut" {
			continue
		}
		want := c.storeTotal(s, starts[s])
		testutil.Eventually(t, 10*time.Second, s+" page shows the store's counts "+fmt.Sprint(want), func() bool {
			return maps.Equal(p.received(), want)
		})
	}
	// The page received the comment, and shows it nowhere once deleted
	// (taken down in flight, or dropped before its moment came).
	testutil.Eventually(t, 10*time.Second, "the page received the comment and does not show it", func() bool {
		return eval[bool](pages["retract"], fmt.Sprintf(`document.getElementById("stat-comments").textContent !== "0" && !document.querySelector('#stage [data-id=%q]')`, id))
	})

	// A 40 s cut: the page comes back and catches up; the decoders read
	// from a cursor 40 s old, then at the window's edge and past it.
	time.Sleep(time.Until(cutAt.Add(41 * time.Second)))
	setOffline(t, pages["cut"], false)
	close(steadyStop)
	steady.Wait()
	want := c.storeTotal("cut", starts["cut"])
	var got map[string]int64
	deadline := time.Now().Add(20 * time.Second)
	for got = pages["cut"].received(); !maps.Equal(got, want); got = pages["cut"].received() {
		if time.Now().After(deadline) {
			t.Fatalf("the page cut off for 40 s shows %v; the store holds %v", got, want)
		}
		time.Sleep(100 * time.Millisecond)
	}
	var a pollAnswer
	_ = json.Unmarshal(c.get("/v1/streams/cut/reactions"), &a)
	c.check("a 40 s cut", "cut", a.Now-40)
	c.check("the window's edge", "cut", a.Now-60)
	views := c.check("past the window's edge", "cut", a.Now-62)
	for name, v := range views {
		if !v.Gap {
			t.Errorf("past the window's edge, %s: no gap", name)
		}
	}

	// The page cut off for 66 s comes back to a gap: it says so, and shows
	// what the window still held (give or take the two seconds its cursor
	// may have moved since the poll that found the gap).
	time.Sleep(time.Until(cutAt.Add(66 * time.Second)))
	setOffline(t, gapPage, false)
	testutil.Eventually(t, 20*time.Second, "the page cut off for 66 s says seconds were lost", func() bool {
		return strings.Contains(eval[string](gapPage, `document.getElementById("status").textContent`), "longer than a minute")
	})
	cursor, _ := strconv.ParseInt(eval[string](gapPage, `document.getElementById("stage").dataset.cursor`), 10, 64)
	window := c.storeTotal("cut", cursor-60)["clap"]
	if shown := gapPage.received()["clap"]; shown < window-2 || shown > window {
		t.Errorf("the page back from a gap shows %d clap; the window held %d", shown, window)
	}

	// A replayed hour: the raw history, the Go client's History and the
	// page's replay agree with the store.
	from := starts["restricted"] - 1800
	raw := c.get(fmt.Sprintf("/v1/streams/restricted/history?from=%d&to=%d", from, from+3599))
	cl, err := client.New(client.Options{Server: c.srv.url})
	if err != nil {
		t.Fatal(err)
	}
	h, err := cl.History(ctx, "restricted", from, from+3599)
	if err != nil {
		t.Fatal(err)
	}
	var hraw struct{ Buckets []client.Bucket }
	if err := json.Unmarshal(raw, &hraw); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h.Buckets, hraw.Buckets) || !hasCounts(bucketCounts(h.Buckets), map[string]int64{"love": 5, "fire": 20}) {
		t.Errorf("a replayed hour: the Go client's History %v; the history answer %s", h.Buckets, raw)
	}
	replayCtx, cancelReplay := chromedp.NewContext(browserCtx)
	defer cancelReplay()
	replay := newPage(t, replayCtx, "replay")
	replay.do(chromedp.Navigate(fmt.Sprintf("%s/?stream=restricted&at=%d", c.srv.url, starts["restricted"])))
	testutil.Eventually(t, 20*time.Second, "the replay shows love 5, fire 20", func() bool {
		return maps.Equal(replay.received(), map[string]int64{"love": 5, "fire": 20})
	})
	for _, p := range pages {
		p.checkNoExceptions()
	}
}

// sample taps stream "sampled" from 20 honest Go clients (each forwards a
// tap with the advertised probability) until the advertised sample is at
// most 1/10, reads it through every decoder while they go on, then stops
// them.
func (c *conformance) sample() map[string]reading {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	for u := range 20 {
		cl, err := client.New(client.Options{Server: c.srv.url, User: fmt.Sprintf("tapper%d", u)})
		if err != nil {
			c.t.Fatal(err)
		}
		s, err := cl.Watch(ctx, "sampled")
		if err != nil {
			c.t.Fatal(err)
		}
		wg.Go(func() {
			defer cl.CloseIdleConnections()
			for ctx.Err() == nil {
				_, _ = s.Tap(ctx, "fire", 1)
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	testutil.Eventually(c.t, 60*time.Second, "the sampled stream advertises 1/10 or less", func() bool {
		var a pollAnswer
		_ = json.Unmarshal(c.get("/v1/streams/sampled/reactions"), &a)
		return a.Sample > 0 && a.Sample <= 0.1
	})
	return c.decoders("sampled", 0)
}

func hasCounts(buckets map[int64]readingBucket, want map[string]int64) bool {
	got := map[string]int64{}
	for _, b := range buckets {
		for e, n := range b.C {
			got[e] += n
		}
	}
	return maps.Equal(got, want)
}

func bucketCounts(bs []client.Bucket) map[int64]readingBucket {
	out := map[int64]readingBucket{}
	for _, b := range bs {
		out[b.T] = readingBucket{C: b.Counts}
	}
	return out
}

func retractedIn(v reading, id string) bool {
	for _, b := range v.Buckets {
		if slices.Contains(b.R, id) {
			return true
		}
	}
	return false
}
