package e2e

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
)

// sentComment is one comment a push node answered.
type sentComment struct {
	text       string
	node       int
	start, end time.Time
	status     string // accepted or shed
}

// commentLog is what the sender of the fleet test did, by text.
type commentLog struct {
	mu   sync.Mutex
	sent map[string]*sentComment
	errs []string
}

func (cl *commentLog) post(client *http.Client, p *proc, node int, stream, user, text string) {
	body, _ := json.Marshal(map[string]string{"text": text, "user": user})
	start := time.Now()
	resp, err := client.Post(p.url+"/v1/streams/"+stream+"/comments", "application/json", strings.NewReader(string(body)))
	end := time.Now()
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if err != nil {
		cl.errs = append(cl.errs, err.Error())
		return
	}
	defer resp.Body.Close()
	var answer struct{ Status string }
	if resp.StatusCode != http.StatusAccepted || json.NewDecoder(resp.Body).Decode(&answer) != nil {
		cl.errs = append(cl.errs, fmt.Sprintf("%s: %d", text, resp.StatusCode))
		return
	}
	cl.sent[text] = &sentComment{text: text, node: node, start: start, end: end, status: answer.Status}
}

// offerComments sends perSecond comments a second, evenly spaced, for d,
// alternating between the push nodes, each from one of 1000 users taking
// turns (so none is over its own limit). Each of many senders keeps its own
// slots; one that falls behind on a loaded machine skips the slots it
// missed rather than sending them in a burst, so the rate stays even.
func offerComments(t *testing.T, pushes []*proc, stream string, perSecond int, d time.Duration) *commentLog {
	t.Helper()
	const senders = 48
	cl := &commentLog{sent: map[string]*sentComment{}}
	gap := time.Second / time.Duration(perSecond)
	slots := int(d / gap)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range senders {
		wg.Go(func() {
			client := &http.Client{Timeout: 5 * time.Second}
			for k := w; k < slots; k += senders {
				at := start.Add(time.Duration(k) * gap)
				if time.Since(at) > 2*gap {
					continue // missed it
				}
				time.Sleep(time.Until(at))
				cl.post(client, pushes[k%len(pushes)], k%len(pushes), stream, fmt.Sprintf("u%d", k%1000), fmt.Sprintf("comment %d", k))
			}
		})
	}
	wg.Wait()
	return cl
}

// commentsSeen is what a viewer was shown of the comments: the second of
// each text, how many each second had, and the texts shown twice.
type commentsSeen struct {
	seen  map[string]int64 // text -> second
	per   map[int64]int    // second -> comments
	twice []string
}

func commentsOf(v *fleetViewer) *commentsSeen {
	v.mu.Lock()
	defer v.mu.Unlock()
	w := &commentsSeen{seen: map[string]int64{}, per: map[int64]int{}}
	for sec, ms := range v.comments {
		for _, m := range ms {
			if _, dup := w.seen[m.Text]; dup {
				w.twice = append(w.twice, m.Text)
			}
			w.seen[m.Text] = sec
			w.per[sec]++
		}
	}
	return w
}

// TestFleetCommentsOnRedis runs 2 push nodes and a pull node on Redis with
// a comment budget of 30 and offers 200 comments a second through both
// push nodes: a viewer sees every accepted comment exactly once, in its
// second, and no shed one; no second holds more than 30 and on average at
// least 25 are kept; and neither when in the second a comment was sent nor
// which push node took it changed its chance (chi-square). Blocked words
// are masked through --blocked-words.
func TestFleetCommentsOnRedis(t *testing.T) {
	t.Parallel()
	words := filepath.Join(t.TempDir(), "blocked.txt")
	if err := os.WriteFile(words, []byte("bad\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	common := []string{"--redis", redistest.Start(t).URL(), "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	// The masking check must not depend on the machine's load: a filter
	// slower than --filter-timeout masks a comment whole.
	pushArgs := append(append([]string{"push", "--comment-budget", "30", "--blocked-words", words, "--filter-timeout", "5s"}, loadSender...), common...)
	pushes := []*proc{startProc(t, "push-1", pushArgs...), startProc(t, "push-2", pushArgs...)}
	pull := startProc(t, "pull", append([]string{"pull"}, common...)...)
	for _, p := range append(pushes, pull) {
		p.waitReady()
	}
	v := watchStream(t, pull, "final")

	cl := &commentLog{sent: map[string]*sentComment{}}
	cl.post(http.DefaultClient, pushes[0], 0, "final", "moderated", "so ＢＡＤ")
	if c := cl.sent["so ＢＡＤ"]; c == nil || c.status != "accepted" {
		t.Fatalf("the first comment of a quiet stream was not accepted: %+v %v", c, cl.errs)
	}
	time.Sleep(time.Until(time.Now().Truncate(time.Second).Add(time.Second))) // a fresh second
	offered := offerComments(t, pushes, "final", 200, 12*time.Second)
	if len(offered.errs) > 0 {
		t.Fatalf("%d comments failed, first: %s", len(offered.errs), offered.errs[0])
	}
	settled := time.Now().Unix() + 2
	testutil.Eventually(t, 30*time.Second, "the viewer passes the last second", func() bool { return v.at() >= settled })
	w := commentsOf(v)
	if len(w.twice) > 0 {
		t.Fatalf("%d comments delivered twice, such as %q", len(w.twice), w.twice[0])
	}
	if sec, ok := w.seen["so ***"]; !ok {
		t.Errorf("the blocked word was not masked: viewer saw %d comments, none masked (second %d)", len(w.seen), sec)
	}

	checkCommentsDelivered(t, offered, w)
	checkCommentBudget(t, offered, w)
}

// checkCommentsDelivered: every accepted comment reached the viewer once,
// in the second it was sent (either one when the request straddled a
// second), and no shed one did.
func checkCommentsDelivered(t *testing.T, cl *commentLog, w *commentsSeen) {
	t.Helper()
	for text, c := range cl.sent {
		sec, seen := w.seen[text]
		switch {
		case c.status == "shed" && seen:
			t.Errorf("shed comment %q was broadcast", text)
		case c.status == "accepted" && !seen:
			t.Errorf("accepted comment %q never reached the viewer", text)
		case c.status == "accepted" && sec != c.start.Unix() && sec != c.end.Unix():
			t.Errorf("comment %q sent in [%d, %d] arrived in second %d", text, c.start.Unix(), c.end.Unix(), sec)
		}
	}
}

// checkCommentBudget: at most 30 comments a second; on average at least
// 25 over the seconds of the run in which (as in the one before) about 200
// were offered; and the same chance early and late in a second and on
// either push node.
func checkCommentBudget(t *testing.T, cl *commentLog, w *commentsSeen) {
	t.Helper()
	first, last := int64(math.MaxInt64), int64(0)
	offered := map[int64]int{}
	for _, c := range cl.sent {
		first, last = min(first, c.start.Unix()), max(last, c.start.Unix())
		offered[c.start.Unix()]++
	}
	for sec, n := range w.per {
		if n > 30 {
			t.Errorf("second %d broadcast %d comments; the budget is 30", sec, n)
		}
	}
	// A second full of offers after a full one: its rate was known.
	kept, full := 0, 0
	for sec := first + 1; sec < last; sec++ {
		if offered[sec] >= 100 && offered[sec-1] >= 100 {
			kept += w.per[sec]
			full++
		}
	}
	// 100 offers a second, over three times the budget, is enough to see
	// it hold, and a busy machine keeps that up.
	if full < 4 {
		t.Fatalf("only %d seconds of the run were offered 100 comments or more (%v): the machine could not keep the load up", full, offered)
	}
	avg := float64(kept) / float64(full)
	// [half or node][shed, accepted], over the seconds after the first,
	// whose rate nobody knew yet.
	var byHalf, byNode [2][2]int
	for _, c := range cl.sent {
		if c.start.Unix() == first || c.start.Unix() != c.end.Unix() {
			continue
		}
		k := 0
		if c.status == "accepted" {
			k = 1
		}
		byHalf[c.start.Nanosecond()/500_000_000][k]++
		byNode[c.node][k]++
	}
	chiHalf := testutil.ChiSquare2x2(byHalf[0][1], byHalf[0][0], byHalf[1][1], byHalf[1][0])
	chiNode := testutil.ChiSquare2x2(byNode[0][1], byNode[0][0], byNode[1][1], byNode[1][0])
	t.Logf("%d comments offered over %d s; %.1f a second kept in the %d seconds offered 100 or more; [shed, kept] early %v late %v in a second (chi-square %.2f), on push-1 %v push-2 %v (chi-square %.2f)",
		len(cl.sent), last-first+1, avg, full, byHalf[0], byHalf[1], chiHalf, byNode[0], byNode[1], chiNode)
	if avg < 25 {
		t.Errorf("%.1f comments a second kept on average; want at least 25 of 30", avg)
	}
	if chiHalf > testutil.ChiSquareCritical {
		t.Errorf("early and late senders in a second had different chances: chi-square %.2f", chiHalf)
	}
	if chiNode > testutil.ChiSquareCritical {
		t.Errorf("senders on push-1 and push-2 had different chances: chi-square %.2f", chiNode)
	}
}
