// Command emojicast runs the emojicast live-reaction service and its
// terminal clients. See README.md.
package main

import (
	"fmt"
	"os"
)

const usage = `emojicast: live-stream emoji reactions for very large audiences.

Usage:
  emojicast <command> [flags]

Commands:
  serve    run push (sends), pull (polls) and the web viewer in one process,
           on the in-memory store or on Redis with --redis
  push     run a push node: take sends, write per-second sums to Redis
  pull     run a pull node: answer polls from rings synced from Redis, and
           serve the web viewer
  archive  drain the data points in Redis into a PostgreSQL archive, which
           pull nodes replay streams of any age from (--archive-dsn)
  watch    print a stream's reactions and comments as they arrive (a live
           chart in a terminal)
  send     send taps of an emoji to a stream
  comment  send a danmaku comment to a stream
  version  print the version, commit and Go version (also --version)

Run 'emojicast <command> --help' for the flags of a command. Every flag can
also be set with an environment variable: --flush-interval is
EMOJICAST_FLUSH_INTERVAL. A flag on the command line wins over the variable.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		os.Exit(runRole(roleServe, args))
	case "push":
		os.Exit(runRole(rolePush, args))
	case "pull":
		os.Exit(runRole(rolePull, args))
	case "archive":
		os.Exit(runArchive(args))
	case "watch":
		os.Exit(runWatch(args))
	case "send":
		os.Exit(runSend(args))
	case "comment":
		os.Exit(runComment(args))
	case "version", "-version", "--version":
		fmt.Println(readBuildInfo())
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "emojicast: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
}
