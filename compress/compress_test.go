package compress

import (
	"bytes"
	stdgzip "compress/gzip"
	"io"
	"strings"
	"sync"
	"testing"

	"github.com/klauspost/compress/gzip"
)

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("gzip.NewReader: %v", err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("gunzip: %v", err)
	}
	return out
}

func TestAppendGzipRoundTripsAndKeepsPrefix(t *testing.T) {
	for _, in := range []string{"", "x", `{"now":1763700123,"buckets":[]}`, strings.Repeat(`{"t":1,"c":{"love":3}},`, 200)} {
		out := AppendGzip([]byte("prefix"), []byte(in))
		if !bytes.HasPrefix(out, []byte("prefix")) {
			t.Fatalf("AppendGzip lost dst's prefix")
		}
		if got := gunzip(t, out[len("prefix"):]); string(got) != in {
			t.Fatalf("round trip = %q; want %q", got, in)
		}
	}
}

func TestAppendGzipIsDeterministicAcrossPooledWriters(t *testing.T) {
	in := []byte(strings.Repeat(`{"t":1763700121,"c":{"love":1200,"haha":40}},`, 10))
	want := AppendGzip(nil, in)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if got := AppendGzip(nil, in); !bytes.Equal(got, want) {
					t.Error("equal inputs encoded to different bytes")
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestNewBodyETags(t *testing.T) {
	long := strings.Repeat(`{"t":1763700121,"c":{"love":1200}},`, 4)
	a := NewBody([]byte(long + `{"now":1}`))
	a2 := NewBody([]byte(long + `{"now":1}`))
	b := NewBody([]byte(long + `{"now":2}`))
	if !bytes.Equal(a.PlainETag, a2.PlainETag) || !bytes.Equal(a.GzipETag, a2.GzipETag) {
		t.Errorf("equal bodies got different ETags: %s %s vs %s %s", a.PlainETag, a.GzipETag, a2.PlainETag, a2.GzipETag)
	}
	if bytes.Equal(a.PlainETag, b.PlainETag) {
		t.Errorf("different bodies share ETag %s", a.PlainETag)
	}
	if bytes.Equal(a.PlainETag, a.GzipETag) {
		t.Errorf("plain and gzip representations share strong ETag %s", a.PlainETag)
	}
	for _, tag := range [][]byte{a.PlainETag, a.GzipETag} {
		if len(tag) < 3 || tag[0] != '"' || tag[len(tag)-1] != '"' || bytes.Contains(tag[1:len(tag)-1], []byte(`"`)) {
			t.Errorf("ETag %s is not a quoted strong validator", tag)
		}
	}
	if got := gunzip(t, a.Gzip); !bytes.Equal(got, a.Plain) {
		t.Errorf("Gzip decodes to %q; want %q", got, a.Plain)
	}
}

func TestCacheGenerations(t *testing.T) {
	c := NewCache(4)
	b1, b2 := NewBody([]byte("1")), NewBody([]byte("2"))
	if got := c.Get(10, 0); got != nil {
		t.Fatalf("Get on empty cache = %v; want nil", got)
	}
	if got := c.Put(10, 0, b1); got != b1 {
		t.Fatalf("first Put returned another body")
	}
	if got := c.Put(10, 0, b2); got != b1 {
		t.Fatalf("second Put for the same slot replaced the first body")
	}
	if got := c.Get(10, 0); got != b1 {
		t.Fatalf("Get = %v; want the first body", got)
	}
	if got := c.Get(10, 1); got != nil {
		t.Fatalf("Get of an unfilled slot = %v; want nil", got)
	}
	if got := c.Put(11, 3, b2); got != b2 || c.Get(11, 3) != b2 {
		t.Fatalf("Put for a new generation did not store")
	}
	// The previous generation is still served and still takes bodies.
	if c.Get(10, 0) != b1 {
		t.Fatalf("previous generation lost after one step")
	}
	if got := c.Put(10, 1, b2); got != b2 || c.Get(10, 1) != b2 {
		t.Fatalf("Put for the previous generation did not store")
	}
	c.Put(12, 0, b1)
	if c.Get(10, 0) != nil || c.Get(11, 3) != b2 {
		t.Fatalf("after two steps: generation 10 must be gone and 11 kept")
	}
	if got := c.Put(10, 2, b1); got != b1 || c.Get(10, 2) != nil {
		t.Fatalf("a Put for a generation older than both kept changed the cache")
	}
}

func TestCacheConcurrentPutsAgreeOnOneBody(t *testing.T) {
	c := NewCache(2)
	var wg sync.WaitGroup
	got := make([]*Body, 16)
	for i := range got {
		wg.Go(func() { got[i] = c.Put(7, 1, NewBody([]byte{byte(i)})) })
	}
	wg.Wait()
	for _, b := range got {
		if b != got[0] {
			t.Fatal("concurrent Puts returned different bodies")
		}
	}
}

func TestCacheGetDoesNotAllocate(t *testing.T) {
	c := NewCache(62)
	c.Put(5, 3, NewBody([]byte("x")))
	if allocs := testing.AllocsPerRun(1000, func() { _ = c.Get(5, 3) }); allocs != 0 {
		t.Fatalf("Get allocates %.1f times; want 0", allocs)
	}
}

// TestPiecesJoinIntoOneGzipStream: pieces compressed on their own, joined
// in any order and number, are one gzip member (the standard library's
// reader, which checks the CRC and size, agrees) of their concatenation.
func TestPiecesJoinIntoOneGzipStream(t *testing.T) {
	parts := []string{`{"now":1763700123,"buckets":[`, "", `{"t":1763700121,"c":{"love":1200}}`, ",",
		strings.Repeat(`,{"t":1763700122,"c":{"haha":40},"m":[{"u":"u1","x":"what a goal!"}]}`, 40), `]}`}
	pieces := make([]*Piece, len(parts))
	for i, p := range parts {
		pieces[i] = NewPiece([]byte(p))
		if again := NewPiece([]byte(p)); !bytes.Equal(again.Deflate, pieces[i].Deflate) {
			t.Fatalf("piece %d: equal inputs compressed to different bytes", i)
		}
	}
	for _, order := range [][]int{{}, {0}, {0, 5}, {0, 2, 3, 4, 5}, {4, 4, 1, 4, 0}, {5, 3, 2, 1, 0, 1, 2, 3, 4, 5}} {
		var j GzipJoiner
		out := j.Start(nil)
		var want []byte
		for _, i := range order {
			out = j.Append(out, pieces[i])
			want = append(want, parts[i]...)
		}
		out = j.End(out)
		zr, err := stdgzip.NewReader(bytes.NewReader(out))
		if err != nil {
			t.Fatalf("%v: %v", order, err)
		}
		zr.Multistream(false)
		got, err := io.ReadAll(zr)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%v: decoded %q, %v; want %q", order, got, err, want)
		}
		if got := gunzip(t, out); !bytes.Equal(got, want) {
			t.Fatalf("%v: klauspost decoded %q", order, got)
		}
	}
}

// TestRacingPutsKeepTheNewestGenerations: a Put that makes a generation
// current races Puts of two newer ones. The cache must end with the two
// newest, never with an older generation left as the previous one: a
// reader that read generation 3 just before it moved must still find its
// body.
func TestRacingPutsKeepTheNewestGenerations(t *testing.T) {
	body := func(gen int64) *Body { return &Body{Plain: []byte{byte(gen)}} }
	stale := 0
	for range 100_000 {
		c := NewCache(1)
		c.Put(1, 0, body(1))
		start := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() { <-start; c.Put(2, 0, body(2)) })
		wg.Go(func() {
			<-start
			c.Put(3, 0, body(3)) // always becomes current: nothing newer yet
			c.Put(4, 0, body(4))
		})
		close(start)
		wg.Wait()
		if c.Get(4, 0) == nil || c.Get(3, 0) == nil {
			stale++
		}
	}
	if stale > 0 {
		t.Fatalf("%d of 100000 races left generation 3 out of the cache after 4 became current", stale)
	}
}
