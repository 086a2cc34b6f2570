package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/emojicast/emojicast/client"
	"github.com/emojicast/emojicast/client/display"
)

// clientFlags are the flags 'emojicast watch' and 'emojicast send' share.
type clientFlags struct {
	server    string
	user      string
	token     string
	dataSaver bool // watch only
}

func (f *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.server, "server", "http://localhost:8080", "base URL of the emojicast service")
	fs.StringVar(&f.user, "user", "", "user id to watch and send as, on a server in the open mode (default: a random one)")
	fs.StringVar(&f.token, "token", "", "identity token (a JWT) your application's backend signed for this viewer, for servers run with --jwt-keys")
}

// newClient returns a client that reports its retries on stderr, so a
// person sees why nothing moves while the network is down.
func (f *clientFlags) newClient(cmd string) (*client.Client, error) {
	return client.New(client.Options{
		Server: f.server, User: f.user, Token: f.token, DataSaver: f.dataSaver,
		OnRetry: func(op string, failures int, wait time.Duration, err error) {
			fmt.Fprintf(os.Stderr, "emojicast %s: %s failed (%s); retrying in %v\n", cmd, op, display.Safe(err.Error()), wait.Round(100*time.Millisecond))
		},
	})
}

// parseClientArgs parses a client command's flags and its want positional
// arguments; code is the exit code when ok is false.
func parseClientArgs(fs *flag.FlagSet, args []string, want int) (rest []string, code int, ok bool) {
	rest, err := parseFlagsAndArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, 0, false
	case err == nil && len(rest) != want:
		err = fmt.Errorf("want %d arguments, got %d", want, len(rest))
		fs.Usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast %s: %v\n", fs.Name(), err)
		return nil, 2, false
	}
	return rest, 0, true
}

const watchDescription = `Usage: emojicast watch [flags] STREAM

Watches a stream and prints its reactions and comments as they arrive: a
live bar chart of the last seconds with the latest comments when stdout is
a terminal, else one line per second with reactions and one per comment. It polls like every viewer does, and keeps going through
network drops. Stop it with Ctrl-C.

With --from, it replays the stream from that Unix second on instead, as
it happened (the server keeps --history of every stream), at --speed.

Try it:
  emojicast watch --server http://localhost:8080 demo
  emojicast watch --from $(($(date +%s) - 600)) --speed 4 demo
`

func runWatch(args []string) int {
	var f clientFlags
	var mode string
	fs := newFlagSet("watch", watchDescription)
	f.register(fs)
	fs.StringVar(&mode, "mode", "auto", "lines, chart, or auto: chart when stdout is a terminal")
	fs.BoolVar(&f.dataSaver, "data-saver", false, "poll at most every 3 s, within the server's longest interval: fewer bytes on a metered network, reactions a little later")
	var from int64
	var speed float64
	fs.Int64Var(&from, "from", 0, "replay from this Unix second on instead of watching live (0: live)")
	fs.Float64Var(&speed, "speed", 1, "with --from, how many times real time the replay plays")
	rest, code, ok := parseClientArgs(fs, args, 1)
	if !ok {
		return code
	}
	if from < 0 || speed <= 0 {
		fmt.Fprintf(os.Stderr, "emojicast watch: --from %d --speed %v: want a Unix second and a positive speed\n", from, speed)
		return 2
	}
	show, err := newView(mode, rest[0])
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast watch: %v\n", err)
		return 2
	}
	c, err := f.newClient("watch")
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast watch: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	run := watch
	if from > 0 {
		run = func(ctx context.Context, c *client.Client, stream string, show view) error {
			return replay(ctx, c, stream, from, speed, show)
		}
	}
	if err := run(ctx, c, rest[0], show); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintf(os.Stderr, "emojicast watch: %s\n", display.Safe(err.Error()))
		return 1
	}
	return 0
}

// view shows updates of a stream whose emoji set it is told first.
type view func(emojis []client.Emoji, u client.Update) error

func newView(mode, stream string) (view, error) {
	if mode == "auto" {
		mode = "lines"
		if fi, err := os.Stdout.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			mode = "chart"
		}
	}
	switch mode {
	case "lines":
		l := &display.Lines{W: os.Stdout}
		return func(emojis []client.Emoji, u client.Update) error {
			l.Emojis = emojis
			return l.Show(u)
		}, nil
	case "chart":
		c := &display.Chart{W: os.Stdout, Stream: stream}
		return func(emojis []client.Emoji, u client.Update) error {
			c.Emojis = emojis
			return c.Show(u)
		}, nil
	}
	return nil, fmt.Errorf("invalid --mode %q: want lines, chart or auto", mode)
}

func watch(ctx context.Context, c *client.Client, stream string, show view) error {
	s, err := c.Watch(ctx, stream)
	if err != nil {
		return err
	}
	// A failed write (stdout gone) ends the watch rather than polling on.
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var showErr error
	err = s.Run(ctx, func(u client.Update) {
		if u.Gap {
			fmt.Fprintln(os.Stderr, "emojicast watch: away for more than the server keeps; some seconds were lost")
		}
		if showErr = show(s.Emojis, u); showErr != nil {
			stop()
		}
	})
	if showErr != nil {
		return fmt.Errorf("cannot write to stdout: %w", showErr)
	}
	return err
}

// replay plays a stream's history from second from on through show.
func replay(ctx context.Context, c *client.Client, stream string, from int64, speed float64, show view) error {
	s, err := c.Watch(ctx, stream) // for the emoji set
	if err != nil {
		return err
	}
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	var showErr error
	err = c.Replay(ctx, stream, from, speed, func(u client.Update) {
		if showErr = show(s.Emojis, u); showErr != nil {
			stop()
		}
	})
	if showErr != nil {
		return fmt.Errorf("cannot write to stdout: %w", showErr)
	}
	return err
}

const sendDescription = `Usage: emojicast send [flags] STREAM EMOJI

Sends taps of an emoji (its id, such as love, or its glyph) to a stream, the
way a viewer's app does: each tap is forwarded with the probability the
server advises, in batches of up to 20, waiting when the server asks.

Try it:
  emojicast send --server http://localhost:8080 demo love -n 5
`

// maxTaps bounds -n: at the default rate limit of 10 taps a second, more
// would take minutes.
const maxTaps = 10_000

func runSend(args []string) int {
	var f clientFlags
	var n int
	fs := newFlagSet("send", sendDescription)
	f.register(fs)
	fs.IntVar(&n, "n", 1, fmt.Sprintf("number of taps, 1 to %d", maxTaps))
	rest, code, ok := parseClientArgs(fs, args, 2)
	if !ok {
		return code
	}
	if n < 1 || n > maxTaps {
		fmt.Fprintf(os.Stderr, "emojicast send: -n %d: want 1 to %d\n", n, maxTaps)
		return 2
	}
	c, err := f.newClient("send")
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast send: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := send(ctx, c, rest[0], rest[1], n); err != nil {
		fmt.Fprintf(os.Stderr, "emojicast send: %s\n", display.Safe(err.Error()))
		return 1
	}
	return 0
}

func send(ctx context.Context, c *client.Client, stream, emoji string, n int) error {
	s, err := c.Watch(ctx, stream)
	if err != nil {
		return err
	}
	for _, e := range s.Emojis {
		if e.Glyph == emoji {
			emoji = e.ID
		}
	}
	sent, err := s.Tap(ctx, emoji, n)
	if err != nil {
		return fmt.Errorf("%w (%d of %d taps were sent)", err, sent, n)
	}
	fmt.Printf("sent %d of %d taps of %s %s to %s (sample %g)\n", sent, n, display.Safe(s.Glyph(emoji)), emoji, stream, s.Sample())
	return nil
}

const commentDescription = `Usage: emojicast comment [flags] STREAM TEXT...

Sends a danmaku comment (1 to 100 characters) to a stream. It says whether
the comment will be broadcast, or was shed because the stream already had
its budget of comments for that second (then only you see it).

Try it:
  emojicast comment --server http://localhost:8080 demo what a goal!
`

func runComment(args []string) int {
	var f clientFlags
	fs := newFlagSet("comment", commentDescription)
	f.register(fs)
	rest, err := parseFlagsAndArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err == nil && len(rest) < 2:
		err = errors.New("want a stream and the text")
		fs.Usage()
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast comment: %v\n", err)
		return 2
	}
	c, err := f.newClient("comment")
	if err != nil {
		fmt.Fprintf(os.Stderr, "emojicast comment: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	s, err := c.Watch(ctx, rest[0])
	if err == nil {
		var kept bool
		if kept, err = s.Comment(ctx, strings.Join(rest[1:], " ")); err == nil {
			verdict := "accepted: it will fly across every viewer's screen"
			if !kept {
				verdict = "shed: the stream had its fill of comments this second; only you see it"
			}
			fmt.Printf("comment on %s %s\n", rest[0], verdict)
			return 0
		}
	}
	fmt.Fprintf(os.Stderr, "emojicast comment: %s\n", display.Safe(err.Error()))
	return 1
}
