package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// send is one accepted send: when it left, when its 202 arrived, and how
// many reactions it adds to the counts (its taps weighted by 1/sample).
type send struct {
	start, accepted time.Time
	weight          int64
}

// sender plays a viewer who taps: it watches (for its token and the send
// URL), then every interval, with jitter, sends a batch of taps of a random
// emoji, forwarding each tap with the probability the server advertises.
type sender struct {
	user string
	cl   *client
	req  fasthttp.Request
	resp fasthttp.Response
	rnd  *rand.Rand

	pushPath string
	token    string
	emojis   []string
	divisor  int64 // 1/sample, as the server last said
	body     []byte

	sends   []send
	limited int // 429 answers
	errors  int
}

func newSender(user string, cl *client, seed uint64) *sender {
	return &sender{user: user, cl: cl, divisor: 1, rnd: rand.New(rand.NewPCG(seed, 0x7a95))}
}

func (s *sender) watch(stream string) error {
	var w struct {
		Push   string  `json:"push"`
		Token  string  `json:"token"`
		Sample float64 `json:"sample"`
		Emojis []struct {
			ID string `json:"id"`
		} `json:"emojis"`
		Allowed []string `json:"allowed"`
	}
	if err := getJSON(s.cl, &s.req, &s.resp, "/v1/streams/"+stream+"/watch?user="+s.user, &w); err != nil {
		return err
	}
	u, err := url.Parse(w.Push)
	if err != nil || u.Path == "" || len(w.Emojis) == 0 {
		return fmt.Errorf("watch answered an unusable push URL %q or no emojis", w.Push)
	}
	s.pushPath, s.token = u.Path, w.Token
	s.setSample(w.Sample)
	for _, e := range w.Emojis {
		s.emojis = append(s.emojis, e.ID)
	}
	if w.Allowed != nil {
		// A stream whose operator restricted its emojis takes only those.
		s.emojis = w.Allowed
	}
	return nil
}

// setSample keeps 1/sample; the server advertises sample as 1/k.
func (s *sender) setSample(sample float64) {
	if sample > 0 && sample <= 1 {
		s.divisor = int64(math.Round(1 / sample))
	}
}

// run sends until stop is closed. maxCount is the most taps in one send.
func (s *sender) run(every time.Duration, maxCount int, stop <-chan struct{}) {
	defer s.cl.close()
	for sleep(jitter(s.rnd, every, 0.5), stop) {
		s.sendOnce(maxCount)
	}
}

func (s *sender) sendOnce(maxCount int) {
	taps := 1 + s.rnd.IntN(maxCount)
	forwarded := 0
	for range taps {
		if s.divisor == 1 || s.rnd.Int64N(s.divisor) == 0 {
			forwarded++
		}
	}
	if forwarded == 0 {
		return
	}
	s.body = append(s.body[:0], `{"emoji":"`...)
	s.body = append(s.body, s.emojis[s.rnd.IntN(len(s.emojis))]...)
	s.body = append(s.body, `","count":`...)
	s.body = strconv.AppendInt(s.body, int64(forwarded), 10)
	s.body = append(s.body, `,"user":"`...)
	s.body = append(s.body, s.user...)
	s.body = append(s.body, `"}`...)

	s.req.Reset()
	s.req.Header.SetMethod(fasthttp.MethodPost)
	s.req.SetRequestURI(s.pushPath)
	s.req.Header.SetContentType("application/json")
	if s.token != "" {
		s.req.Header.Set(fasthttp.HeaderAuthorization, "Bearer "+s.token)
	}
	s.req.SetBodyRaw(s.body)
	start := time.Now()
	if _, err := s.cl.do(&s.req, &s.resp); err != nil {
		s.errors++
		return
	}
	switch s.resp.StatusCode() {
	case fasthttp.StatusAccepted:
		accepted := time.Now()
		// The 202 carries the sample the taps were weighted with.
		var a struct {
			Sample float64 `json:"sample"`
		}
		if json.Unmarshal(s.resp.Body(), &a) == nil {
			s.setSample(a.Sample)
		}
		s.sends = append(s.sends, send{start: start, accepted: accepted, weight: int64(forwarded) * s.divisor})
	case fasthttp.StatusTooManyRequests:
		s.limited++
	default:
		s.errors++
	}
}
