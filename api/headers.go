package api

import "bytes"

// Header names the api and server packages write, as bytes for fasthttp's
// SetCanonical and PeekBytes, in one place. Never modify them.
var (
	HeaderCacheControl   = []byte("Cache-Control")
	HeaderVary           = []byte("Vary")
	HeaderAllow          = []byte("Allow")
	HeaderRetryAfter     = []byte("Retry-After")
	HeaderOrigin         = []byte("Origin")
	HeaderAcceptEncoding = []byte("Accept-Encoding")
)

// AcceptsGzip reports whether an Accept-Encoding header value allows gzip:
// gzip, x-gzip or * listed without q=0. It does not allocate.
func AcceptsGzip(acceptEncoding []byte) bool {
	for len(acceptEncoding) > 0 {
		var item []byte
		item, acceptEncoding, _ = bytes.Cut(acceptEncoding, []byte{','})
		coding, params, _ := bytes.Cut(item, []byte{';'})
		coding = bytes.TrimSpace(coding)
		if !bytes.EqualFold(coding, []byte("gzip")) && !bytes.EqualFold(coding, []byte("x-gzip")) && !bytes.Equal(coding, []byte("*")) {
			continue
		}
		if !qualityIsZero(params) {
			return true
		}
	}
	return false
}

// qualityIsZero reports whether parameters hold q=0 (q=0, q=0.0, q=0.000).
func qualityIsZero(params []byte) bool {
	for len(params) > 0 {
		var p []byte
		p, params, _ = bytes.Cut(params, []byte{';'})
		k, v, ok := bytes.Cut(bytes.TrimSpace(p), []byte{'='})
		if !ok || !bytes.EqualFold(bytes.TrimSpace(k), []byte("q")) {
			continue
		}
		v = bytes.TrimSpace(v)
		if len(v) == 0 || v[0] != '0' {
			return false
		}
		for _, c := range v[1:] {
			if c != '.' && c != '0' {
				return false
			}
		}
		return true
	}
	return false
}

// ETagMatches reports whether an If-None-Match header value matches etag
// (a quoted strong tag), using the weak comparison RFC 9110 prescribes for
// If-None-Match. It does not allocate.
func ETagMatches(ifNoneMatch, etag []byte) bool {
	for len(ifNoneMatch) > 0 {
		var item []byte
		item, ifNoneMatch, _ = bytes.Cut(ifNoneMatch, []byte{','})
		item = bytes.TrimSpace(item)
		if bytes.Equal(item, []byte("*")) {
			return true
		}
		item = bytes.TrimPrefix(item, []byte("W/"))
		if bytes.Equal(item, etag) {
			return true
		}
	}
	return false
}
