# Varnish 7 as a caching edge (a CDN node) in front of emojicast pull
# nodes: the second edge, with deploy/nginx.conf's guarantees.
#
# A template: fill the fields in double braces (Go text/template; any
# template tool or sed will do), then run
#   varnishd -a :80 -f /path/to/rendered.vcl
#   {{.Pull}}   pull nodes (emojicast pull, or serve), host:port each
#   {{.Push}}   push nodes (emojicast push, or serve), host:port each
#   {{.CORSOrigins}} optional: the origins' --cors-origins when it is a
#               list of origins, one scheme://host[:port] each; only these
#               Origins enter the cache key
# Run the origins with --trusted-proxies set to this edge. The edge's
# audience reaches the pull nodes through varnishncsa (docs/operations.md,
# "A Varnish edge"). cmd/emojicast/varnish_edge_test.go runs this file.
vcl 4.1;

import directors;
import std;

{{range $i, $a := .Pull}}
backend pull{{$i}} {
    .host = "{{$a}}";
    .connect_timeout = 2s;
    .first_byte_timeout = 5s;
    .between_bytes_timeout = 5s;
}
{{- end}}
{{range $i, $a := .Push}}
backend push{{$i}} {
    .host = "{{$a}}";
    .connect_timeout = 2s;
    .first_byte_timeout = 5s;
    .between_bytes_timeout = 5s;
}
{{- end}}

sub vcl_init {
    # Consistent hashing on the stream id: one pull node syncs a stream
    # whatever the fleet size, and adding or removing a node moves only
    # its share of the streams; sends of a stream go to one push node.
    new pull = directors.shard();
{{- range $i, $a := .Pull}}
    pull.add_backend(pull{{$i}});
{{- end}}
    pull.reconfigure();
    new push = directors.shard();
{{- range $i, $a := .Push}}
    push.add_backend(push{{$i}});
{{- end}}
    push.reconfigure();
}

sub vcl_recv {
    # The client is the one this edge saw: the client's own
    # X-Forwarded-For is replaced, never appended to, so nobody can choose
    # the address the origins' per-address limits count.
    set req.http.X-Forwarded-For = client.ip;

    # No path of ours needs a percent escape, an empty segment or a dot
    # segment, and the origin would read them as another path: refusing
    # them leaves one spelling of every path for the rules below.
    set req.http.X-Emojicast-Path = regsub(req.url, "\?.*$", "");
    if (req.http.X-Emojicast-Path ~ "(%|//|/\.\.?(/|$))") {
        return (synth(404));
    }
    # Operations and the operators' API and page are for the operator's
    # network: scrape, probe and administer the origins directly.
    if (req.http.X-Emojicast-Path ~ "(?i)^/(metrics|readyz)/?$" ||
        req.http.X-Emojicast-Path ~ "(?i)^/(v1/)?admin(/|$)") {
        return (synth(404));
    }

    # Which stream a request is about.
    if (req.http.X-Emojicast-Path ~ "^/v1/streams/[A-Za-z0-9_.-]{1,64}/") {
        set req.http.X-Emojicast-Stream = regsub(req.http.X-Emojicast-Path, "^/v1/streams/([^/]+)/.*$", "\1");
    } else {
        set req.http.X-Emojicast-Stream = req.url;
    }

    if (req.method == "POST") {
        # Sends and comments: never cached, and never retried by the edge
        # once passed on (a node may have counted them).
        set req.backend_hint = push.backend(by=KEY, key=push.key(req.http.X-Emojicast-Stream));
        unset req.http.X-Emojicast-Path;
        unset req.http.X-Emojicast-Stream;
        return (pass);
    }
    set req.backend_hint = pull.backend(by=KEY, key=pull.key(req.http.X-Emojicast-Stream));

    # The only Origin an answer varies on: one the origins allow by name.
    # Any other, or none, shares one entry and is not passed on.
    if (req.http.Origin) {
        set req.http.X-Emojicast-Origin = std.tolower(req.http.Origin);
        unset req.http.Origin;
{{- range .CORSOrigins}}{{if ne . "*"}}
        if (req.http.X-Emojicast-Origin == std.tolower("{{.}}")) {
            set req.http.Origin = "{{.}}";
        }
{{- end}}{{end}}
        unset req.http.X-Emojicast-Origin;
    }

    if (req.http.X-Emojicast-Path ~ "^/v1/streams/[^/]+/(reactions|history)$" &&
        (req.method == "GET" || req.method == "HEAD")) {
        # Polls and history: the origin sees the cursor (or range) and the
        # format only; nothing else of the query (a user id, a cache
        # buster) reaches it or the cache key, nor does anything of the
        # viewer. Varnish keeps one gzip copy and unzips it for clients
        # that take no gzip, so the encoding needs no key of its own.
        set req.http.X-Emojicast-Query = "";
        if (req.http.X-Emojicast-Path ~ "/reactions$") {
            # v=2 asks for the compact body; any other v, the v1 body.
            if (regsub(req.url, "^[^?]*\?(?:[^&]*&)*?v=([^&]*).*$|^.*$", "\1") == "2") {
                set req.http.X-Emojicast-Query = "v=2&";
            }
            set req.http.X-Emojicast-Query = req.http.X-Emojicast-Query +
                regsub(req.url, "^[^?]*\?(?:[^&]*&)*?(since=[^&]+).*$|^.*$", "\1");
        } else {
            set req.http.X-Emojicast-Query =
                regsub(req.url, "^[^?]*\?(?:[^&]*&)*?(from=[^&]*).*$|^.*$", "\1") + "&" +
                regsub(req.url, "^[^?]*\?(?:[^&]*&)*?(to=[^&]*).*$|^.*$", "\1");
        }
        set req.url = req.http.X-Emojicast-Path + "?" + req.http.X-Emojicast-Query;
        unset req.http.X-Emojicast-Query;
        unset req.http.Authorization;
        unset req.http.Cookie;
        # A viewer's request Cache-Control does not bypass the shared cache.
        unset req.http.Cache-Control;
        unset req.http.X-Emojicast-Path;
        unset req.http.X-Emojicast-Stream;
        return (hash);
    }
    # Watches (they carry a viewer's token), the emoji set, the page:
    # passed through, never cached here.
    unset req.http.X-Emojicast-Path;
    unset req.http.X-Emojicast-Stream;
    return (pass);
}

sub vcl_hash {
    hash_data(req.url);
    if (req.http.Origin) {
        hash_data(req.http.Origin);
    }
    return (lookup);
}

sub vcl_backend_response {
    # The answers say how long they stay fresh (Expires, with
    # stale-while-revalidate and stale-if-error: docs/api.md); the
    # built-in rules keep no-store answers out of the cache. The key above
    # holds what an answer varies on, so Vary: Origin need not split it.
    if (beresp.http.Vary ~ "(?i)origin") {
        set beresp.http.X-Emojicast-Vary = beresp.http.Vary;
        unset beresp.http.Vary;
    }
}

sub vcl_deliver {
    if (resp.http.X-Emojicast-Vary) {
        set resp.http.Vary = resp.http.X-Emojicast-Vary;
        unset resp.http.X-Emojicast-Vary;
    }
    unset resp.http.Via;
    unset resp.http.X-Varnish;
}

sub vcl_synth {
    if (resp.status == 404) {
        set resp.http.Content-Type = "application/json";
        # (Spaces before the closing braces: a quote and a brace would end
        # VCL's long string.)
        synthetic({"{"error":{"code":"not_found","message":"no such endpoint; see API.md" } }"});
        return (deliver);
    }
}
