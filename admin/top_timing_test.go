package admin_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/valyala/fasthttp"
)

// redisUsec returns Redis's calls and microseconds of HGETALL since it
// started (INFO commandstats).
func redisUsec(b *testing.B, c redis.UniversalClient) (calls, usec float64) {
	b.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	m := regexp.MustCompile(`cmdstat_hgetall:calls=(\d+),usec=(\d+)`).FindStringSubmatch(info)
	if m == nil {
		return 0, 0
	}
	calls, _ = strconv.ParseFloat(m[1], 64)
	usec, _ = strconv.ParseFloat(m[2], 64)
	return calls, usec
}

// BenchmarkAdminTop: GET /v1/admin/streams?top=50 with 1 and 4 pull nodes
// each reporting 1000 streams, reading the store every call (the reports'
// cost per read) and through the process's cache (what the ops page
// pays). Reports Redis's HGETALLs, microseconds and reply bytes per call.
func BenchmarkAdminTop(b *testing.B) {
	for _, nodes := range []int{1, 4} {
		a, client := topFleet(b, nodes)
		reports, err := client.HGetAll(context.Background(), "{top:mod}:top").Result()
		if err != nil || len(reports) != nodes {
			b.Fatalf("the reports: %d, %v", len(reports), err)
		}
		replyBytes := 0
		for _, v := range reports {
			replyBytes += len(v)
		}
		for _, mode := range []string{"store", "cached"} {
			b.Run(fmt.Sprintf("nodes=%d/%s", nodes, mode), func(b *testing.B) {
				b.ReportAllocs()
				calls0, usec0 := redisUsec(b, client)
				for b.Loop() {
					if mode == "store" {
						a.ForgetTop()
					}
					if code, body := adminGet(a, "/v1/admin/streams?top=50"); code != fasthttp.StatusOK {
						b.Fatalf("GET streams: %d %s", code, body)
					}
				}
				calls, usec := redisUsec(b, client)
				b.ReportMetric((calls-calls0)/float64(b.N), "hgetall/op")
				b.ReportMetric((usec-usec0)/float64(b.N), "redis-us/op")
				b.ReportMetric((calls-calls0)/float64(b.N)*float64(replyBytes), "redis-B/op")
			})
		}
	}
}
