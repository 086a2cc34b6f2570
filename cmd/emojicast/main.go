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
  serve    run push (sends), pull (polls) and the web viewer in one process
  watch    print a stream's reactions as they arrive (a live chart in a terminal)
  send     send taps of an emoji to a stream

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
		os.Exit(runServe(args))
	case "watch":
		os.Exit(runWatch(args))
	case "send":
		os.Exit(runSend(args))
	case "help", "-h", "-help", "--help":
		fmt.Print(usage)
	default:
		fmt.Fprintf(os.Stderr, "emojicast: unknown command %q\n\n%s", cmd, usage)
		os.Exit(2)
	}
}
