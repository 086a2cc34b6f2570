package server

import (
	"testing"

	"github.com/emojicast/emojicast/internal/testutil"
)

// TestDotIDsRefused: an id made only of dots is refused where it would
// first be accepted. A path normaliser changes "." and ".." segments, so
// a user banned as ".." could never be named in DELETE .../bans/.. again.
func TestDotIDsRefused(t *testing.T) {
	var log testutil.SyncBuffer
	n := adminNode(t, &log)
	jsonBody := map[string]string{"Content-Type": "application/json"}
	for _, id := range []string{".", "..", "..."} {
		wantError(t, "ban of "+id, n.admin("POST", "/v1/admin/streams/s/bans", `{"user":"`+id+`","seconds":60}`), 400, "invalid_user")
		wantError(t, "send as "+id, n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"`+id+`"}`, jsonBody), 400, "invalid_user")
		wantError(t, "comment as "+id, n.do("POST", "/v1/streams/s/comments", `{"text":"hi","user":"`+id+`"}`, jsonBody), 400, "invalid_user")
		wantError(t, "watch as "+id, n.do("GET", "/v1/streams/s/watch?user="+id, "", nil), 400, "invalid_user")
		wantError(t, "send with id "+id, n.do("POST", "/v1/streams/s/reactions", `{"emoji":"love","user":"u1","id":"`+id+`"}`, jsonBody), 400, "invalid_id")
	}
	// "..." survives path normalisation, so it reaches the stream id check.
	wantError(t, "poll of stream ...", n.do("GET", "/v1/streams/.../reactions", "", nil), 400, "invalid_stream")
	wantError(t, "send to stream ...", n.do("POST", "/v1/streams/.../reactions", `{"emoji":"love","user":"u1"}`, jsonBody), 400, "invalid_stream")
	wantError(t, "settings of stream ...", n.admin("PUT", "/v1/admin/streams/.../settings", `{"closed":true}`), 400, "invalid_stream")
}
