// Package admin is the operators' API (version 1): the busiest streams,
// each stream's settings, bans and comment retractions. Every call needs
// an admin token; every action is logged with the token's label and
// counted. It writes to the store's moderation data, which every push and
// pull node follows (see package moderation), so a change reaches the
// whole fleet within about a second and outlives any node.
package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/clock"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/store"
)

// Options configures an Admin. Zero fields take the default in their comment.
type Options struct {
	// Tokens are the admin tokens. Required: at least one.
	Tokens []Token
	// Store holds the moderation data. Required.
	Store store.Moderator
	// Emojis is the emoji set stream settings restrict. Default: emoji.Default().
	Emojis *emoji.Set
	// Clock stamps bans. Default: the system clock.
	Clock clock.Clock
	// Timeout bounds one call's store work. Default: 2s.
	Timeout time.Duration
	// TopMaxAge is how long the busiest streams read from the store are
	// reused for every call. Default: DefaultTopMaxAge.
	TopMaxAge time.Duration
	// Logger receives the log of admin actions. Default: slog.Default().
	Logger *slog.Logger
	// Registerer takes the metrics. Default: nil, registered nowhere
	// (tests); emojicast passes prometheus.DefaultRegisterer.
	Registerer prometheus.Registerer
}

// Handler serves /v1/admin/.
type Handler struct {
	opts     Options
	metrics  *metrics
	topCache topCache
}

// New returns an Admin.
func New(opts Options) (*Handler, error) {
	if len(opts.Tokens) == 0 {
		return nil, errors.New("admin: at least one token is required")
	}
	if opts.Store == nil {
		return nil, errors.New("admin: a store is required")
	}
	if opts.Emojis == nil {
		opts.Emojis = emoji.Default()
	}
	if opts.Clock == nil {
		opts.Clock = clock.Real{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if opts.TopMaxAge <= 0 {
		opts.TopMaxAge = DefaultTopMaxAge
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Handler{opts: opts, metrics: newMetrics(opts.Registerer)}, nil
}

// Limits of the calls.
const (
	// MaxTop is the most streams GET /v1/admin/streams lists.
	MaxTop = store.MaxTopStreams
	// DefaultTop is how many it lists without ?top.
	DefaultTop = 50
	// MaxBan is the longest ban.
	MaxBan = 30 * 24 * time.Hour
	// MaxCommentBudget is the largest comment_budget a setting may hold.
	MaxCommentBudget = 1000
)

// The admin API's own errors.
var (
	errUnauthorized   = api.NewError(fasthttp.StatusUnauthorized, "unauthorized", "a valid admin token is required: send Authorization: Bearer <admin token>")
	errInvalidTop     = api.NewError(fasthttp.StatusBadRequest, "invalid_top", "top must be an integer from 1 to 1000")
	errInvalidID      = api.NewError(fasthttp.StatusBadRequest, "invalid_comment", "comment id must be 1 to 64 characters of A-Z a-z 0-9 _ - ., not only dots")
	errBanNotFound    = api.NewError(fasthttp.StatusNotFound, "not_found", "this user is not banned from this stream")
	errUserOrAddress  = api.NewError(fasthttp.StatusBadRequest, "invalid_body", "a ban names a user or an address, not both")
	errInvalidAddress = api.NewError(fasthttp.StatusBadRequest, "invalid_address", "address must be an IPv4 or IPv6 address")
	errFull           = api.NewError(fasthttp.StatusConflict, "too_many", "the deployment holds its maximum of moderated streams or bans; lift some first")
	errStore          = api.NewError(fasthttp.StatusServiceUnavailable, "unavailable", "the store is unreachable; retry after the number of seconds in Retry-After")
)

// The actions, as logged and as labels of emojicast_admin_actions_total.
const (
	actList     = "list_streams"
	actGet      = "get_stream"
	actSettings = "put_settings"
	actBan      = "ban"
	actUnban    = "unban"
	actRetract  = "retract_comment"
)

var bearer = []byte("bearer ")

// Handle serves every path under /v1/admin/.
func (a *Handler) Handle(ctx *fasthttp.RequestCtx) {
	auth := ctx.Request.Header.Peek(fasthttp.HeaderAuthorization)
	if len(auth) < len(bearer) || !bytes.EqualFold(auth[:len(bearer)], bearer) {
		a.metrics.unauthorized.Inc()
		api.WriteError(ctx, errUnauthorized)
		return
	}
	label, ok := match(a.opts.Tokens, bytes.TrimSpace(auth[len(bearer):]))
	if !ok {
		a.metrics.unauthorized.Inc()
		api.WriteError(ctx, errUnauthorized)
		return
	}
	rest, _ := strings.CutPrefix(string(ctx.Path()), "/v1/admin/")
	parts := strings.Split(rest, "/")
	if parts[0] != "streams" {
		api.WriteError(ctx, api.ErrNotFound)
		return
	}
	if len(parts) > 1 && !api.ValidID([]byte(parts[1])) {
		api.WriteError(ctx, api.ErrInvalidStream)
		return
	}
	c := &call{a: a, ctx: ctx, label: label}
	method := string(ctx.Method())
	switch {
	case len(parts) == 1:
		c.route(method, "GET", actList, c.list)
	case len(parts) == 2:
		c.route(method, "GET", actGet, func() { c.get(parts[1]) })
	case len(parts) == 3 && parts[2] == "settings":
		c.route(method, "PUT", actSettings, func() { c.putSettings(parts[1]) })
	case len(parts) == 3 && parts[2] == "bans":
		c.route(method, "POST", actBan, func() { c.ban(parts[1]) })
	case len(parts) == 4 && parts[2] == "bans":
		c.route(method, "DELETE", actUnban, func() { c.unban(parts[1], parts[3]) })
	case len(parts) == 4 && parts[2] == "comments":
		c.route(method, "DELETE", actRetract, func() { c.retract(parts[1], parts[3]) })
	default:
		api.WriteError(ctx, api.ErrNotFound)
	}
}

// call is one admin request.
type call struct {
	a     *Handler
	ctx   *fasthttp.RequestCtx
	label string
	attrs []any // what the action log adds
}

// route runs do when the method is allowed, then logs and counts it.
func (c *call) route(method, allow, action string, do func()) {
	if method != allow && !(allow == "GET" && method == "HEAD") {
		api.WriteMethodNotAllowed(c.ctx, allow)
		return
	}
	start := time.Now()
	do()
	status := c.ctx.Response.StatusCode()
	result := "ok"
	switch {
	case status >= 500:
		result = "failed"
	case status >= 400:
		result = "refused"
	}
	c.a.metrics.actions.WithLabelValues(action, result).Inc()
	level := slog.LevelInfo
	if action == actList || action == actGet {
		level = slog.LevelDebug // reads are counted; the ops page polls them
	}
	attrs := append([]any{"who", c.label, "action", action, "status", status,
		"at", start.UTC().Format(time.RFC3339Nano), "took", time.Since(start).Round(time.Microsecond)}, c.attrs...)
	c.a.opts.Logger.Log(context.Background(), level, "admin action", attrs...)
}

func (c *call) context() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), c.a.opts.Timeout)
}

// storeError answers a failed store call.
func (c *call) storeError(err error) {
	if errors.Is(err, store.ErrModerationFull) {
		api.WriteError(c.ctx, errFull)
		return
	}
	c.attrs = append(c.attrs, "err", err)
	api.WriteRetry(c.ctx, errStore, 1)
}

func (c *call) writeJSON(status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("BUG: an admin answer does not encode: " + err.Error())
	}
	api.WriteJSON(c.ctx, status, b)
}

// list serves GET /v1/admin/streams?top=N.
func (c *call) list() {
	n := DefaultTop
	if raw := c.ctx.QueryArgs().Peek("top"); raw != nil {
		v, err := strconv.Atoi(string(raw))
		if err != nil || v < 1 || v > MaxTop {
			api.WriteError(c.ctx, errInvalidTop)
			return
		}
		n = v
	}
	ctx, cancel := c.context()
	defer cancel()
	top, err := c.a.top(ctx)
	if err != nil {
		c.storeError(err)
		return
	}
	top = top[:min(n, len(top))]
	if top == nil {
		top = []store.StreamStats{}
	}
	c.writeJSON(fasthttp.StatusOK, map[string]any{"streams": top})
}

// SettingsJSON is a stream's settings as the admin API reads and writes
// them.
type SettingsJSON struct {
	Emojis        []string `json:"emojis"`
	Comments      bool     `json:"comments"`
	CommentBudget int      `json:"comment_budget"`
	SlowModeS     int      `json:"slow_mode_s"`
	Closed        bool     `json:"closed"`
}

func (a *Handler) settingsJSON(s store.Settings) SettingsJSON {
	out := SettingsJSON{Emojis: s.Emojis, Comments: !s.CommentsOff, CommentBudget: s.CommentBudget, SlowModeS: s.SlowModeS, Closed: s.Closed}
	if len(out.Emojis) == 0 {
		for i := range a.opts.Emojis.Len() {
			out.Emojis = append(out.Emojis, a.opts.Emojis.At(i).ID)
		}
	}
	return out
}

// BanJSON is one ban as the admin API lists it.
type BanJSON struct {
	// User is the banned user, or the id of a banned address group
	// ("@" and hex), which lifts it as a user id would.
	User string `json:"user"`
	// Address is the banned address group as a network (a /32 or a
	// /56); empty for a user's ban.
	Address string `json:"address,omitempty"`
	Until   int64  `json:"until"` // Unix seconds
}

// banJSON lists a ban.
func banJSON(b store.Ban) BanJSON {
	out := BanJSON{User: b.User, Until: b.Until.Unix()}
	if p, ok := clientip.PrefixOfID(b.User); ok {
		out.Address = p.String()
	}
	return out
}

// StreamJSON is GET /v1/admin/streams/{stream}.
type StreamJSON struct {
	ID       string             `json:"id"`
	Settings SettingsJSON       `json:"settings"`
	Bans     []BanJSON          `json:"bans"`
	Stats    *store.StreamStats `json:"stats"` // null when no pull node reports it among its busiest
}

// get serves GET /v1/admin/streams/{stream}.
func (c *call) get(stream string) {
	c.attrs = append(c.attrs, "stream", stream)
	ctx, cancel := c.context()
	defer cancel()
	m, err := c.a.opts.Store.LoadModeration(ctx)
	if err != nil {
		c.storeError(err)
		return
	}
	top, err := c.a.top(ctx)
	if err != nil {
		c.storeError(err)
		return
	}
	out := StreamJSON{ID: stream, Settings: c.a.settingsJSON(m.Settings[stream]), Bans: []BanJSON{}}
	for _, b := range m.Bans {
		if b.Stream == stream {
			out.Bans = append(out.Bans, banJSON(b))
		}
	}
	if i := slices.IndexFunc(top, func(s store.StreamStats) bool { return s.ID == stream }); i >= 0 {
		stats := top[i] // a copy: top is shared
		out.Stats = &stats
	}
	c.writeJSON(fasthttp.StatusOK, out)
}
