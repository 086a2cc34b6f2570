// Package web is the web viewer: a page, embedded in the binary, that plays
// a stream's reactions as emojis rising over a video-like stage, with
// confetti for bursts, its danmaku comments flying right to left in lanes,
// a live viewer count, a button per emoji and a box to comment. The page
// follows docs/api.md like a mobile client with the JavaScript client
// package (clients/js), whose module it serves as /static/emojicast.js.
// There is no build step and nothing is loaded from elsewhere.
//
// The package serves the page's files, gzipped once at start, with strong
// ETags, and owns the page's security headers: a Content-Security-Policy
// without inline script or style, no framing, no sniffing, no referrer.
package web

import (
	"embed"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"strings"

	"github.com/valyala/fasthttp"

	"github.com/emojicast/emojicast/api"
	jsclient "github.com/emojicast/emojicast/clients/js"
	"github.com/emojicast/emojicast/compress"
)

//go:embed static
var static embed.FS

// Options configures the web viewer.
type Options struct {
	// ConnectOrigins are origins (scheme://host[:port]) the page may call
	// besides its own: those of the pull and push URLs that watch hands
	// out, when they point elsewhere (--public-url, a CDN). Default: none.
	ConnectOrigins []string
	// OpsPage serves the operators' page at /admin (static/admin.*);
	// without it those paths answer 404. Default: off.
	OpsPage bool
}

// file is one embedded file, encoded for serving.
type file struct {
	body        *compress.Body
	contentType []byte
}

// Viewer serves the web viewer's files.
type Viewer struct {
	files   map[string]*file // by request path
	headers [][2][]byte      // security headers on every answer
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// New loads the embedded files and returns the viewer.
func New(opts Options) (*Viewer, error) {
	v := &Viewer{files: map[string]*file{}}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ct, ok := contentTypes[path.Ext(name)]
		if !ok {
			return fmt.Errorf("cannot serve %s: unknown file type", name)
		}
		if strings.HasPrefix(path.Base(name), "admin.") && !opts.OpsPage {
			return nil
		}
		b, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		v.files["/"+name] = &file{body: compress.NewBody(b), contentType: []byte(ct)}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("cannot load the web viewer: %w", err)
	}
	// The protocol is the JavaScript client package's module, not a copy.
	v.files["/static/emojicast.js"] = &file{body: compress.NewBody(jsclient.Module), contentType: []byte(contentTypes[".js"])}
	index := v.files["/static/index.html"]
	if index == nil {
		return nil, fmt.Errorf("cannot load the web viewer: static/index.html is missing")
	}
	v.files["/"], v.files["/index.html"] = index, index
	if ops := v.files["/static/admin.html"]; ops != nil {
		v.files["/admin"] = ops
	}
	csp, err := contentSecurityPolicy(opts.ConnectOrigins)
	if err != nil {
		return nil, err
	}
	for _, h := range [][2]string{
		{"Content-Security-Policy", csp},
		{"X-Content-Type-Options", "nosniff"},
		{"X-Frame-Options", "DENY"},
		{"Referrer-Policy", "no-referrer"},
		{"Cross-Origin-Opener-Policy", "same-origin"},
		{"Permissions-Policy", "camera=(), microphone=(), geolocation=(), payment=()"},
	} {
		v.headers = append(v.headers, [2][]byte{[]byte(h[0]), []byte(h[1])})
	}
	return v, nil
}

// contentSecurityPolicy allows the page its own scripts, styles and icon,
// calls to its own origin and the given ones, and nothing else: no inline
// code, no plugins, no framing by other sites.
func contentSecurityPolicy(origins []string) (string, error) {
	connect := []string{"'self'"}
	for _, o := range origins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsAny(u.Host, " ;,'") {
			return "", fmt.Errorf("cannot allow the page to call %q: want an origin such as https://cdn.example.com", o)
		}
		connect = append(connect, u.Scheme+"://"+u.Host)
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
		"connect-src " + strings.Join(connect, " ") + "; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'", nil
}

// Files are small and change with each release under the same names: a
// browser keeps them but asks, and gets a 304 while they are current.
var cacheRevalidate = []byte("no-cache")

// Handle serves GET and HEAD of /, /index.html and /static/...; other
// paths get the API's 404.
func (v *Viewer) Handle(ctx *fasthttp.RequestCtx) {
	f := v.files[string(ctx.Path())]
	if f == nil {
		api.WriteError(ctx, api.ErrNotFound)
		return
	}
	h := &ctx.Response.Header
	for _, kv := range v.headers {
		h.SetCanonical(kv[0], kv[1])
	}
	api.WriteBody(ctx, f.body, f.contentType, cacheRevalidate)
}
