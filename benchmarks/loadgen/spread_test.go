package main

import (
	"net"
	"os"
	"testing"
	"time"
)

func TestPeekInt(t *testing.T) {
	body := []byte(`{"now":1795622454,"next_ms":5000,"sample":1,"viewers":3,"buckets":[]}`)
	for key, want := range map[string]int64{`"now":`: 1795622454, `"next_ms":`: 5000, `"viewers":`: 3} {
		if got, ok := peekInt(body, key); !ok || got != want {
			t.Errorf("peekInt(%s) = %d, %v; want %d", key, got, ok, want)
		}
	}
	for _, key := range []string{`"gap":`, `"buckets":`} {
		if got, ok := peekInt(body, key); ok {
			t.Errorf("peekInt(%s) = %d; want none", key, got)
		}
	}
}

// TestSpreadSummary checks the per-viewer figures: CPU over viewers times
// seconds, resident memory over the base per viewer, and medians.
func TestSpreadSummary(t *testing.T) {
	tg := spreadTarget{BaseRSS: 10 << 20}
	tg.summarize([]spreadPhase{
		{viewers: 1000, seconds: 10, cpu: 0.5, polls: 10_000, errors: 1, rss: 10<<20 + 6_000_000},
		{viewers: 1000, seconds: 10, cpu: 0.7, polls: 9_000, rss: 10<<20 + 7_000_000},
		{viewers: 1000, seconds: 20, cpu: 0.8, polls: 18_000, errors: 2, rss: 10<<20 + 5_000_000},
	}, 1000)
	wantCPU := []float64{50, 70, 40}
	for i, w := range wantCPU {
		if got := tg.CPUPerViewerUS[i]; got != w {
			t.Errorf("phase %d: %v us per viewer-second; want %v", i, got, w)
		}
	}
	if tg.MedianCPUUS != 50 || tg.MedianRSSPerViewer != 6000 || tg.Errors != 3 || tg.PollsPerViewerSec != 0.9 {
		t.Errorf("medians: CPU %v us, RSS %v B, polls %v per viewer-second, errors %d; want 50, 6000, 0.9, 3",
			tg.MedianCPUUS, tg.MedianRSSPerViewer, tg.PollsPerViewerSec, tg.Errors)
	}
	// CPU per poll: 50, 77.8 and 44.4 us.
	if tg.CPUPerPollUS != 50 {
		t.Errorf("CPU per poll %v us; want 50", tg.CPUPerPollUS)
	}
}

// TestReach checks the time to half and all of an audience, and that an
// audience some of which never saw the reaction has no "all".
func TestReach(t *testing.T) {
	accepted := time.Unix(1000, 0)
	viewers := make([]*spreadViewer, 5)
	for i, d := range []time.Duration{3 * time.Second, time.Second, 0, 2 * time.Second, 4 * time.Second} {
		viewers[i] = &spreadViewer{}
		if i != 2 {
			viewers[i].firstSeen.Store(accepted.Add(d).UnixNano())
		}
	}
	half, all, saw := reach(viewers, accepted)
	if half != 3000 || all != 0 || saw != 4 {
		t.Errorf("one viewer of 5 missing: half %v ms, all %v ms, saw %d; want 3000, 0, 4", half, all, saw)
	}
	viewers[2].firstSeen.Store(accepted.Add(5 * time.Second).UnixNano())
	if half, all, saw = reach(viewers, accepted); half != 3000 || all != 5000 || saw != 5 {
		t.Errorf("all saw: half %v ms, all %v ms, saw %d; want 3000, 5000, 5", half, all, saw)
	}
}

// TestPhaseTiming checks that viewers start spread over one poll interval,
// never under a second, and poll once more before the measurement.
func TestPhaseTiming(t *testing.T) {
	for _, c := range []struct {
		nextMS      int64
		start, warm time.Duration
	}{
		{1000, time.Second, 2100 * time.Millisecond},
		{5000, 5 * time.Second, 10500 * time.Millisecond},
		{250, time.Second, 1275 * time.Millisecond},
	} {
		start, warm := phaseTiming(c.nextMS)
		if start != c.start || warm != c.warm {
			t.Errorf("next_ms %d: start within %v, warm %v; want %v, %v", c.nextMS, start, warm, c.start, c.warm)
		}
	}
}

// TestListenerPID finds this test's own process from a socket it listens
// on, and reads its CPU time and resident memory as the stage does.
func TestListenerPID(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	pid, err := listenerPID(ln.Addr().String())
	if err != nil || pid != os.Getpid() {
		t.Fatalf("listenerPID = %d, %v; want this process, %d", pid, err, os.Getpid())
	}
	if rss, err := procRSS(pid); err != nil || rss < 1<<20 {
		t.Errorf("procRSS = %d, %v; want this process's megabytes", rss, err)
	}
	if _, err := procCPU(pid); err != nil {
		t.Errorf("procCPU: %v", err)
	}
	ln.Close()
	if pid, err := listenerPID(ln.Addr().String()); err == nil {
		t.Errorf("listenerPID of a closed port = %d; want an error", pid)
	}
}
