package admin

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/moderation"
	"github.com/emojicast/emojicast/store"
)

// maxBody is the largest admin request body.
const maxBody = 4096

var mediaJSON = []byte("application/json")

// readJSON decodes the request's JSON body into v, refusing unknown
// fields, and answers 4xx when it cannot.
func (c *call) readJSON(v any) bool {
	media, _, _ := bytes.Cut(c.ctx.Request.Header.ContentType(), []byte{';'})
	if !bytes.EqualFold(bytes.TrimSpace(media), mediaJSON) {
		api.WriteError(c.ctx, api.ErrUnsupportedMedia)
		return false
	}
	body := c.ctx.Request.Body()
	if len(body) > maxBody {
		api.WriteError(c.ctx, api.NewError(fasthttp.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("admin request bodies must be at most %d bytes", maxBody)))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.More() {
		msg := "body must be one JSON object with only the documented fields"
		if err != nil {
			msg += ": " + err.Error()
		}
		api.WriteError(c.ctx, api.NewError(fasthttp.StatusBadRequest, "invalid_body", msg))
		return false
	}
	return true
}

// invalidSettings is the 400 answer to a setting out of its range.
func invalidSettings(format string, args ...any) *api.Error {
	return api.NewError(fasthttp.StatusBadRequest, "invalid_settings", fmt.Sprintf(format, args...))
}

var errInvalidSeconds = api.NewError(fasthttp.StatusBadRequest, "invalid_seconds", "seconds must be from 1 to 2592000 (30 days)")

// settingsPatch is a PUT body: every field optional.
type settingsPatch struct {
	Emojis        *[]string `json:"emojis"`
	Comments      *bool     `json:"comments"`
	CommentBudget *int      `json:"comment_budget"`
	SlowModeS     *int      `json:"slow_mode_s"`
	Closed        *bool     `json:"closed"`
}

// apply validates the patch and applies it to s.
func (a *Handler) apply(p settingsPatch, s *store.Settings) *api.Error {
	if p.Emojis != nil {
		ids := *p.Emojis
		if len(ids) > a.opts.Emojis.Len() {
			return invalidSettings("emojis lists more ids than the emoji set has")
		}
		for i, id := range ids {
			if _, ok := a.opts.Emojis.IndexString(id); !ok {
				return invalidSettings("emoji %q is not in the emoji set (GET /v1/emojis)", id)
			}
			if slices.Contains(ids[:i], id) {
				return invalidSettings("emoji %q is listed twice", id)
			}
		}
		s.Emojis = slices.Clone(ids)
		if len(s.Emojis) == a.opts.Emojis.Len() {
			s.Emojis = nil // the whole set: no restriction
		}
	}
	if p.Comments != nil {
		s.CommentsOff = !*p.Comments
	}
	if p.CommentBudget != nil {
		if *p.CommentBudget < 0 || *p.CommentBudget > MaxCommentBudget {
			return invalidSettings("comment_budget must be from 0 (the fleet's) to %d", MaxCommentBudget)
		}
		s.CommentBudget = *p.CommentBudget
	}
	if p.SlowModeS != nil {
		if *p.SlowModeS < 0 || *p.SlowModeS > int(moderation.MaxSlowMode/time.Second) {
			return invalidSettings("slow_mode_s must be from 0 (off) to %d", int(moderation.MaxSlowMode/time.Second))
		}
		s.SlowModeS = *p.SlowModeS
	}
	if p.Closed != nil {
		s.Closed = *p.Closed
	}
	return nil
}

// putSettings serves PUT /v1/admin/streams/{stream}/settings.
func (c *call) putSettings(stream string) {
	c.attrs = append(c.attrs, "stream", stream)
	var p settingsPatch
	if !c.readJSON(&p) {
		return
	}
	c.attrs = append(c.attrs, "body", string(c.ctx.Request.Body()))
	ctx, cancel := c.context()
	defer cancel()
	m, err := c.a.opts.Store.LoadModeration(ctx)
	if err != nil {
		c.storeError(err)
		return
	}
	s := m.Settings[stream]
	if aerr := c.a.apply(p, &s); aerr != nil {
		api.WriteError(c.ctx, aerr)
		return
	}
	if err := c.a.opts.Store.PutSettings(ctx, stream, s); err != nil {
		c.storeError(err)
		return
	}
	c.writeJSON(fasthttp.StatusOK, c.a.settingsJSON(s))
}

// banBody is a POST .../bans body: a user, or a client address whose
// group (an IPv4 address, an IPv6 /56) is banned whatever ids it uses.
type banBody struct {
	User    string `json:"user"`
	Address string `json:"address"`
	Seconds int64  `json:"seconds"`
}

// ban serves POST /v1/admin/streams/{stream}/bans.
func (c *call) ban(stream string) {
	c.attrs = append(c.attrs, "stream", stream)
	var b banBody
	if !c.readJSON(&b) {
		return
	}
	id := b.User
	switch {
	case b.User != "" && b.Address != "":
		api.WriteError(c.ctx, errUserOrAddress)
		return
	case b.Address != "":
		a, ok := clientip.ParseAddr([]byte(b.Address))
		if !ok || a.Is4In6() {
			api.WriteError(c.ctx, errInvalidAddress)
			return
		}
		id = clientip.ID(a)
	case !api.ValidID([]byte(b.User)):
		api.WriteError(c.ctx, api.ErrInvalidUser)
		return
	}
	if b.Seconds < 1 || b.Seconds > int64(MaxBan/time.Second) {
		api.WriteError(c.ctx, errInvalidSeconds)
		return
	}
	until := c.a.opts.Clock.Now().Add(time.Duration(b.Seconds) * time.Second)
	c.attrs = append(c.attrs, "user", id, "until", until.UTC().Format(time.RFC3339))
	ctx, cancel := c.context()
	defer cancel()
	if err := c.a.opts.Store.BanUser(ctx, store.Ban{Stream: stream, User: id, Until: until}); err != nil {
		c.storeError(err)
		return
	}
	ban := banJSON(store.Ban{User: id, Until: until})
	c.writeJSON(fasthttp.StatusCreated, map[string]any{"stream": stream, "user": ban.User, "address": ban.Address, "until": ban.Until})
}

// unban serves DELETE /v1/admin/streams/{stream}/bans/{user}, the user
// being a user id or the id of a banned address group as listed.
func (c *call) unban(stream, user string) {
	c.attrs = append(c.attrs, "stream", stream, "user", user)
	if _, group := clientip.PrefixOfID(user); !group && !api.ValidID([]byte(user)) {
		api.WriteError(c.ctx, api.ErrInvalidUser)
		return
	}
	ctx, cancel := c.context()
	defer cancel()
	found, err := c.a.opts.Store.UnbanUser(ctx, stream, user)
	if err != nil {
		c.storeError(err)
		return
	}
	if !found {
		api.WriteError(c.ctx, errBanNotFound)
		return
	}
	c.ctx.SetStatusCode(fasthttp.StatusNoContent)
}

// retract serves DELETE /v1/admin/streams/{stream}/comments/{id}. The
// store cannot tell whether the id was ever a comment of the stream: a
// retraction of an unknown id costs a few bytes and takes nothing down.
func (c *call) retract(stream, id string) {
	c.attrs = append(c.attrs, "stream", stream, "comment", id)
	if !api.ValidID([]byte(id)) {
		api.WriteError(c.ctx, errInvalidID)
		return
	}
	ctx, cancel := c.context()
	defer cancel()
	if err := c.a.opts.Store.Retract(ctx, stream, id); err != nil {
		c.storeError(err)
		return
	}
	c.writeJSON(fasthttp.StatusAccepted, map[string]any{"status": "retracted", "stream": stream, "id": id})
}
