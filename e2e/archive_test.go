package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/emojicast/emojicast/archive"
	"github.com/emojicast/emojicast/internal/pgtest"
	"github.com/emojicast/emojicast/internal/redistest"
	"github.com/emojicast/emojicast/internal/testutil"
	"github.com/emojicast/emojicast/store"
)

// The archive tests run push and pull nodes and `emojicast archive` on a
// real Redis and a real PostgreSQL, and check the archive against the taps
// the push nodes accepted, second by second.

// archivedCounts reads the archive's counts of a stream by second.
func archivedCounts(t *testing.T, db *pgxpool.Pool, stream string) counts {
	t.Helper()
	rows, err := db.Query(context.Background(), "SELECT second, counts FROM emojicast_seconds WHERE stream = $1", stream)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	c := counts{}
	for rows.Next() {
		var sec int64
		var m map[string]int64
		if err := rows.Scan(&sec, &m); err != nil {
			t.Fatal(err)
		}
		for e, n := range m {
			c.add(sec, e, n)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return c
}

func archivedTotal(t *testing.T, db *pgxpool.Pool, streams []string) int64 {
	t.Helper()
	var n int64
	for _, s := range streams {
		for _, e := range archivedCounts(t, db, s).total() {
			n += e
		}
	}
	return n
}

// historyAnswer GETs a history range and returns its status, body and
// Cache-Control.
func historyAnswer(t *testing.T, p *proc, stream string, from, to int64) (int, string, string) {
	t.Helper()
	resp, err := fleetClient.Get(fmt.Sprintf("%s/v1/streams/%s/history?from=%d&to=%d", p.url, stream, from, to))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	if _, err := bufio.NewReader(resp.Body).WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b.String(), resp.Header.Get("Cache-Control")
}

// TestArchiveFleet: taps go through a push node for 14 s while the
// archiver is SIGKILLed (with batches of 20 records, most likely mid-batch)
// and restarted, and PostgreSQL is stopped for 5 s (the property, a
// backlog kept in Redis and archived once when it comes back, is the same
// for longer outages; TestArchiveSurvivesPostgresOutage in package archive
// stops it for 30 s). Then the archive holds exactly the accepted
// taps, second by second; a pull node answering every range from the
// archive gives the same bytes and Cache-Control as one answering from
// Redis; and a stream a week old replays from the archive, without its
// comment taken down, through GET .../history, the viewer page (headless
// Chromium) and `watch --from`.
func TestArchiveFleet(t *testing.T) {
	t.Parallel()
	testutil.Long(t, "sends for 14 s and waits for the archive")
	srv := redistest.Start(t)
	pg := pgtest.Start(t)
	common := []string{"--redis", srv.URL(), "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	push := startProc(t, "push", append(append([]string{"push"}, loadSender...), common...)...)
	// The test asks a pull node for history often, from one address.
	pullArgs := append(append([]string{"pull", "--ip-watch-rate", "1000", "--ip-watch-burst", "1000"}, exact...), common...)
	fromRedis := startProc(t, "pull-redis", pullArgs...)
	// --history 1s: every range older than a second (less archive.Margin:
	// every range) is read from the archive.
	fromArchive := startProc(t, "pull-archive", append(pullArgs, "--archive-dsn", pg.DSN(), "--history", "1s")...)
	weekly := startProc(t, "pull-24h", append(pullArgs, "--archive-dsn", pg.DSN())...)
	archArgs := []string{"archive", "--redis", srv.URL(), "--archive-dsn", pg.DSN(), "--archive-batch", "20", "--log-level", "warn"}
	arch := startProc(t, "archive-1", archArgs...)
	for _, p := range []*proc{push, fromRedis, fromArchive, weekly} {
		p.waitReady()
	}
	db, err := archive.Open(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	streams := []string{"arch-a", "arch.b", "arch_c"}
	ta := newTally()
	var wg sync.WaitGroup
	wg.Go(func() { sendFor(t, ta, []*proc{push}, streams, 14*time.Second) })
	time.Sleep(3 * time.Second)
	if err := arch.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-arch.exited
	arch = startProc(t, "archive-2", archArgs...)
	time.Sleep(2 * time.Second)
	pg.Stop()
	time.Sleep(5 * time.Second)
	pg.Restart()
	wg.Wait()
	if ta.accepted < 1000 || ta.refused > 0 {
		t.Fatalf("%d taps accepted, %d sends refused; want over a thousand accepted and none refused", ta.accepted, ta.refused)
	}
	// Reconnected after the outage: the pool's connections were closed
	// under it.
	testutil.Eventually(t, 60*time.Second, "the archive holds every accepted tap", func() bool {
		return archivedTotal(t, db, streams) >= ta.accepted
	})
	for _, s := range streams {
		seen := archivedCounts(t, db, s)
		ta.checkSeconds(t, "archive", s, seen)
		if got, want := fmt.Sprint(seen.total()), fmt.Sprint(ta.totals(s)); got != want {
			t.Errorf("archive of %s holds %s in all; push accepted %s", s, got, want)
		}
	}
	if n := arch.metric("emojicast_archive_points_lost_total"); n != 0 {
		t.Errorf("emojicast_archive_points_lost_total = %v; want 0", n)
	}
	if n := arch.metric("emojicast_archive_errors_total"); n <= 0 {
		t.Errorf("emojicast_archive_errors_total = %v; the PostgreSQL outage went unseen", n)
	}

	// The same bytes from the archive as from Redis.
	for _, s := range streams {
		first, last := ta.span(s)
		testutil.Eventually(t, 10*time.Second, "the range is sealed", func() bool {
			_, body, _ := historyAnswer(t, fromRedis, s, first, last+2)
			return strings.Contains(body, fmt.Sprintf(`"to":%d`, last+2))
		})
		code, want, wantCC := historyAnswer(t, fromRedis, s, first, last+2)
		gotCode, got, gotCC := historyAnswer(t, fromArchive, s, first, last+2)
		if code != http.StatusOK || gotCode != code || got != want || gotCC != wantCC {
			t.Errorf("history of %s from the archive: %d %q %s\nfrom Redis: %d %q %s", s, gotCode, gotCC, got, code, wantCC, want)
		}
	}

	checkWeekOld(t, db, weekly)
}

// checkWeekOld writes a stream's second of a week ago into the archive, as
// the archiver would have, and replays it from a pull node that keeps the
// default 24 h in Redis.
func checkWeekOld(t *testing.T, db *pgxpool.Pool, pull *proc) {
	t.Helper()
	ctx := context.Background()
	sec := time.Now().Add(-7*24*time.Hour).Unix()/60*60 + 5
	d := sec / 86400
	stmts := []string{
		fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s PARTITION OF emojicast_seconds FOR VALUES FROM (%d) TO (%d)", archive.PartitionName(d), d*86400, (d+1)*86400),
		fmt.Sprintf(`INSERT INTO emojicast_seconds VALUES ('last-week', %d, '{"love": 7, "fire": 2}', '[["c1", "ann", "a week ago"], ["c2", "bob", "taken down"]]')`, sec),
		fmt.Sprintf(`INSERT INTO emojicast_retracted VALUES ('last-week', 'c2', %d)`, sec+30),
	}
	for _, s := range stmts {
		if _, err := db.Exec(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	code, body, cc := historyAnswer(t, pull, "last-week", sec-5, sec+54)
	var h struct {
		Buckets []struct {
			T int64            `json:"t"`
			C map[string]int64 `json:"c"`
			M []struct {
				U string `json:"u"`
				X string `json:"x"`
			} `json:"m"`
		} `json:"buckets"`
	}
	if err := json.Unmarshal([]byte(body), &h); code != http.StatusOK || err != nil {
		t.Fatalf("history of a week ago: %d %v %s", code, err, body)
	}
	if len(h.Buckets) != 1 || h.Buckets[0].T != sec || h.Buckets[0].C["love"] != 7 || h.Buckets[0].C["fire"] != 2 ||
		len(h.Buckets[0].M) != 1 || h.Buckets[0].M[0].X != "a week ago" {
		t.Fatalf("history of a week ago: %s; want second %d with love 7, fire 2 and only the comment not taken down", body, sec)
	}
	if !strings.HasPrefix(cc, "public, max-age=30") {
		t.Errorf("a sealed whole minute of a week ago has Cache-Control %q; want the sealed answer's", cc)
	}
	// The viewer page's replay plays it.
	bctx, bcancel := context.WithTimeout(ctx, 90*time.Second)
	defer bcancel()
	page := newPage(t, browser(t, bctx), "week-old replay")
	page.do(chromedp.Navigate(fmt.Sprintf("%s/?stream=last-week&at=%d", pull.url, sec-1)))
	if !eval[bool](page, seenOnStage) {
		t.Fatal("cannot observe the stage")
	}
	testutil.Eventually(t, 20*time.Second, "the page to replay the week-old second", func() bool {
		got := page.received()
		return got["love"] == 7 && got["fire"] == 2
	})
	testutil.Eventually(t, 10*time.Second, "the week-old comment on the stage", func() bool {
		return eval[bool](page, `window.__seen.comments.length === 1 && window.__seen.comments[0] === "a week ago"`)
	})
	page.checkNoExceptions()
	// watch --from plays it.
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary(t), "watch", "--server", pull.url, "--mode", "lines", "--from", fmt.Sprint(sec-2), "--speed", "10", "last-week")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var lines []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		all := strings.Join(lines, "\n")
		if strings.Contains(all, "a week ago") && strings.Contains(all, "7") {
			if strings.Contains(all, "taken down") {
				t.Fatalf("watch --from showed the comment taken down:\n%s", all)
			}
			return
		}
	}
	t.Fatalf("watch --from a week ago printed, before it ended:\n%s", strings.Join(lines, "\n"))
}

// TestArchiveFleetRedisFailover: on a Redis Cluster with a replica per
// master, the master holding a stream's data points is SIGKILLed while
// taps come, its replica cut off for the second before (replication lag,
// as the soak does), and the replica takes over. The batches of that
// second are on the dead master alone: the push node writes them again on
// the new one, and the archiver, which with --redis-min-replicas 1
// archives only what a replica has, archived none of them. The archive
// holds exactly the accepted taps, second by second.
func TestArchiveFleetRedisFailover(t *testing.T) {
	t.Parallel()
	testutil.Long(t, "a replicated cluster, a failover and 12 s of taps")
	cluster := redistest.StartReplicatedCluster(t, 3, soakNodeTimeout)
	pg := pgtest.Start(t)
	addrs := cluster.Addrs()
	common := []string{"--redis", addrs, "--redis-min-replicas", "1", "--seal-delay", fleetSealDelay, "--log-level", "warn"}
	push := startProc(t, "push", append(append([]string{"push"}, loadSender...), common...)...)
	pull := startProc(t, "pull", append(append([]string{"pull"}, exact...), common...)...)
	push.waitReady()
	pull.waitReady()
	arch := startProc(t, "archive", "archive", "--redis", addrs, "--redis-min-replicas", "1", "--archive-dsn", pg.DSN(), "--archive-batch", "50", "--log-level", "warn")
	db, err := archive.Open(context.Background(), pg.DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	streams := []string{"failover-a", "failover-b"}
	victim := cluster.MasterOf(t, cluster.Slot(t, store.PointsKey("emojicast", store.ShardOf(streams[0]))))
	replica := cluster.ReplicaOf(t, victim)
	if replica == nil {
		t.Fatalf("master %s has no replica", victim.Addr())
	}
	ta := newTally()
	var wg sync.WaitGroup
	wg.Go(func() { sendFor(t, ta, []*proc{push}, streams, 12*time.Second) })
	time.Sleep(4 * time.Second)
	replica.Pause()
	victim.DropReplicaLinks(t)
	time.Sleep(soakReplicaLag)
	victim.Kill()
	replica.Resume()
	cluster.Takeover(t, replica)
	victim.Restart()
	wg.Wait()
	if ta.accepted < 500 || ta.refused > 0 {
		t.Fatalf("%d taps accepted, %d sends refused; want hundreds accepted and none refused", ta.accepted, ta.refused)
	}
	testutil.Eventually(t, 90*time.Second, "the archive holds every accepted tap", func() bool {
		return archivedTotal(t, db, streams) >= ta.accepted
	})
	time.Sleep(2 * time.Second) // a count archived twice would show now
	for _, s := range streams {
		seen := archivedCounts(t, db, s)
		if got, want := fmt.Sprint(seen.total()), fmt.Sprint(ta.totals(s)); got != want {
			t.Errorf("archive of %s holds %s in all; push accepted %s", s, got, want)
		}
		// A batch the push node wrote again on the new master after its
		// second was sealed counts in a later second (docs/api.md, late
		// counts), in the store's history as in the archive: second by
		// second, the archive is the history every replay reads.
		first, last := ta.span(s)
		var h pollAnswer
		testutil.Eventually(t, 20*time.Second, "history sealed 5 s past the last tap", func() bool {
			code, body, _ := historyAnswer(t, pull, s, first-1, last+5)
			if err := json.Unmarshal([]byte(body), &h); code != http.StatusOK || err != nil {
				t.Fatalf("history of %s: %d %v %s", s, code, err, body)
			}
			return h.To == last+5
		})
		hist := counts{}
		for _, b := range h.Buckets {
			for e, n := range b.C {
				hist.add(b.T, e, n)
			}
		}
		for sec := first - 1; sec <= last+5; sec++ {
			if got, want := fmt.Sprint(seen[sec]), fmt.Sprint(hist[sec]); got != want {
				t.Errorf("archive of %s, second %d: %s; the store's history has %s", s, sec, got, want)
			}
		}
	}
	if n := arch.metric("emojicast_archive_points_lost_total"); n != 0 {
		t.Errorf("emojicast_archive_points_lost_total = %v; want 0", n)
	}
}
