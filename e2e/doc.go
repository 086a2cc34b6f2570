// Package e2e runs emojicast the way operators do and checks it from the
// outside: serve, push and pull processes on real redis-servers and Redis
// Clusters, behind the shipped nginx edge, through Toxiproxy's weak links,
// watched by Chromium and by the Go, JavaScript and Kotlin clients.
//
// The package's non-test files are the harness every end-to-end test
// uses: processes with their logs on failure (proc.go), the edge
// (edge.go), the browser (browser.go), weak links (weaklink.go), the
// recording viewer (viewer.go) and the sender (sender.go). The tests of
// the command line itself (flags, help, version, packaging) stay in
// cmd/emojicast.
//
// The processes are built without the race detector, but for the tests
// named in raceBuilt, which exercise the fleet's concurrency under faults:
// a race-built process is several times slower, and a suite of them took
// most of the test run's time.
package e2e
