package api

import "bytes"

// Route names an endpoint of docs/api.md independently of its method.
type Route uint8

// The routes. RouteUnknown is every path that is not one of them.
const (
	RouteUnknown   Route = iota
	RouteReactions       // /v1/streams/{stream}/reactions
	RouteWatch           // /v1/streams/{stream}/watch
	RouteComments        // /v1/streams/{stream}/comments
	RouteHistory         // /v1/streams/{stream}/history
	RouteEmojis          // /v1/emojis
	RouteHealthz         // /healthz
	RouteReadyz          // /readyz
	RouteMetrics         // /metrics
	RouteIndex           // / and the web viewer's files (and the ops page, /admin)
	RouteAdmin           // /v1/admin/...: the operators' API
	routeCount
)

// NumRoutes is the number of routes, for tables indexed by Route.
const NumRoutes = int(routeCount)

var routeNames = [...]string{
	RouteUnknown:   "unknown",
	RouteReactions: "reactions",
	RouteWatch:     "watch",
	RouteComments:  "comments",
	RouteHistory:   "history",
	RouteEmojis:    "emojis",
	RouteHealthz:   "healthz",
	RouteReadyz:    "readyz",
	RouteMetrics:   "metrics",
	RouteIndex:     "index",
	RouteAdmin:     "admin",
}

// String returns the route's name, used as a metric label.
func (r Route) String() string { return routeNames[r] }

// HasStream reports whether the route's path carries a stream id.
func (r Route) HasStream() bool {
	return r == RouteReactions || r == RouteWatch || r == RouteComments || r == RouteHistory
}

var (
	streamsPrefix = []byte("/v1/streams/")
	adminPrefix   = []byte("/v1/admin/")
)

// ParsePath maps a request path to its route and, for stream routes, the
// stream id segment (not yet validated: an empty or malformed id still
// selects the route, so the caller can answer invalid_stream). It does not
// allocate; stream aliases path.
func ParsePath(path []byte) (route Route, stream []byte) {
	if rest, ok := bytes.CutPrefix(path, streamsPrefix); ok {
		i := bytes.LastIndexByte(rest, '/')
		if i < 0 {
			return RouteUnknown, nil
		}
		stream = rest[:i]
		switch string(rest[i+1:]) {
		case "reactions":
			return RouteReactions, stream
		case "watch":
			return RouteWatch, stream
		case "comments":
			return RouteComments, stream
		case "history":
			return RouteHistory, stream
		}
		return RouteUnknown, nil
	}
	switch string(path) {
	case "/v1/emojis":
		return RouteEmojis, nil
	case "/healthz":
		return RouteHealthz, nil
	case "/readyz":
		return RouteReadyz, nil
	case "/metrics":
		return RouteMetrics, nil
	case "/", "/index.html", "/admin":
		return RouteIndex, nil
	}
	if bytes.HasPrefix(path, adminPrefix) {
		return RouteAdmin, nil
	}
	if bytes.HasPrefix(path, []byte("/static/")) {
		return RouteIndex, nil
	}
	return RouteUnknown, nil
}
