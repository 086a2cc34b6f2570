//go:build memstats

package main

// Built with -tags memstats only, for measuring what a connection costs
// (benchmarks/README.md, "Where a connected viewer's bytes go"): when
// EMOJICAST_MEMSTATS_ADDR is set, the process serves, on that address,
// /memstats (one line of runtime.MemStats, cheap enough to read every
// second under load) and net/http/pprof's profiles. Release builds leave
// it out: it is not an operations endpoint.

import (
	"fmt"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime"
)

func init() {
	addr := os.Getenv("EMOJICAST_MEMSTATS_ADDR")
	if addr == "" {
		return
	}
	http.HandleFunc("/memstats", func(w http.ResponseWriter, _ *http.Request) {
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		fmt.Fprintf(w, "goroutines=%d heap_alloc=%d heap_inuse=%d heap_idle=%d heap_released=%d stack_inuse=%d "+
			"mspan_inuse=%d gc_sys=%d other_sys=%d next_gc=%d num_gc=%d total_alloc=%d\n",
			runtime.NumGoroutine(), m.HeapAlloc, m.HeapInuse, m.HeapIdle, m.HeapReleased, m.StackInuse,
			m.MSpanInuse, m.GCSys, m.OtherSys, m.NextGC, m.NumGC, m.TotalAlloc)
	})
	go func() { _ = http.ListenAndServe(addr, nil) }()
}
