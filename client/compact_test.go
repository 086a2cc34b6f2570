package client

import (
	"reflect"
	"testing"
)

// TestDecodeCompactAnswer: a compact answer (docs/api.md) reads as the v1
// answer it stands for: counts by the watch's emoji order, burst bits,
// comments with their ids, retractions, the gap flag; an index past the
// known set is dropped.
func TestDecodeCompactAnswer(t *testing.T) {
	s := &Stream{Emojis: []Emoji{{ID: "like"}, {ID: "love"}, {ID: "fire"}}}
	ans, err := s.decodeAnswer([]byte(`[1795622454,2000,0.5,3,[[1795622452,4,[0,5,20]],[1795622453,0,[1,0,0,7],["u1","what a goal!","u2","wow"],["c.1",""]],[1795622454,0,[],[],[],["c.1","c.0"]]],1]`))
	if err != nil {
		t.Fatal(err)
	}
	want := pollAnswer{Now: 1795622454, NextMS: 2000, Sample: 0.5, Viewers: 3, Gap: true, Buckets: []Bucket{
		{T: 1795622452, Counts: map[string]int64{"love": 5, "fire": 20}, Burst: []string{"fire"}},
		{T: 1795622453, Counts: map[string]int64{"like": 1}, Comments: []Comment{{User: "u1", Text: "what a goal!", ID: "c.1"}, {User: "u2", Text: "wow"}}},
		{T: 1795622454, Counts: map[string]int64{}, Retracted: []string{"c.1", "c.0"}},
	}}
	if !reflect.DeepEqual(ans, want) {
		t.Fatalf("decoded %+v\nwant %+v", ans, want)
	}
	v1, err := s.decodeAnswer([]byte(`{"now":5,"next_ms":1000,"sample":1,"viewers":1,"buckets":[{"t":5,"c":{"love":2}}]}`))
	if err != nil || v1.Now != 5 || v1.Buckets[0].Counts["love"] != 2 {
		t.Fatalf("a v1 answer decoded to %+v, %v", v1, err)
	}
	for _, bad := range []string{`[1,2]`, `[1,2,3,4,[[1]]]`, `[1,2,3,4,[["x",0,[]]]]`, `[`} {
		if _, err := s.decodeAnswer([]byte(bad)); err == nil {
			t.Errorf("decodeAnswer(%s) accepted it", bad)
		}
	}
}

// FuzzDecodeAnswer: whatever a server (or something pretending to be one)
// answers, decoding returns an error or an answer, never panics.
func FuzzDecodeAnswer(f *testing.F) {
	for _, s := range []string{`[1795622454,2000,0.5,3,[[1795622452,4,[0,5,20]]],1]`, `[1,2,3,4,[[1,9223372036854775807,[1,2,3,4,5,6,7,8,9],["a"]]]]`, `{"now":1}`, `[]`} {
		f.Add([]byte(s))
	}
	s := &Stream{Emojis: []Emoji{{ID: "like"}, {ID: "love"}, {ID: "fire"}}}
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = s.decodeAnswer(b)
	})
}
