package main

import (
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

// configOf parses args as role r's flags and checks them as runNode does.
func configOf(t *testing.T, r role, args ...string) (*nodeConfig, error) {
	t.Helper()
	var f nodeFlags
	fs := newFlagSet(r.name, r.description)
	f.register(fs, r)
	if err := parseFlags(fs, args); err != nil {
		t.Fatalf("flags %q do not parse: %v", args, err)
	}
	return newNodeConfig(r, &f)
}

// TestNodeConfigRefusals has one case per refusal newNodeConfig makes: a
// node refuses each before it opens a store or a socket.
func TestNodeConfigRefusals(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-such-keys")
	redis := []string{"--redis", "127.0.0.1:1"} // never dialled: the checks come first
	for _, tc := range []struct {
		name string
		role role
		args []string
		want string
	}{
		{"seal delay within a flush", roleServe, []string{"--seal-delay", "200ms", "--flush-interval", "250ms"}, "--seal-delay 200ms must exceed --flush-interval 250ms"},
		{"push without redis", rolePush, nil, "push needs --redis"},
		{"pull without redis", rolePull, nil, "pull needs --redis"},
		{"replicas without redis", roleServe, []string{"--redis-min-replicas", "1"}, "--redis-min-replicas 1 needs --redis"},
		{"negative replicas", rolePull, append(redis, "--redis-min-replicas", "-1"), "must not be negative"},
		{"regions without redis", roleServe, []string{"--region-redis", "redis://127.0.0.1:1"}, "--region-redis needs --redis"},
		{"previous secret alone", roleServe, []string{"--token-secret-previous", "0123456789abcdef"}, "--token-secret-previous needs --token-secret"},
		{"JWT lifetime", roleServe, []string{"--jwt-keys", missing, "--jwt-max-lifetime", "0s"}, "invalid --jwt-max-lifetime 0s"},
		{"emoji set", roleServe, []string{"--emojis", "Bad=x"}, "cannot parse emoji"},
		{"short token secret", roleServe, []string{"--token-secret", "short"}, "16 bytes"},
		{"JWT keys", roleServe, []string{"--jwt-keys", missing}, "invalid --jwt-keys"},
		{"trusted proxies", roleServe, []string{"--trusted-proxies", "10.0.0.0/99"}, "invalid --trusted-proxies"},
		{"CORS origins", roleServe, []string{"--cors-origins", "https://example.com/path"}, "invalid --cors-origins"},
		{"admin token", roleServe, []string{"--admin-token", "short"}, "invalid --admin-token"},
		{"edge feed without proxies", roleServe, []string{"--edge-log-listen", "127.0.0.1:0", "--edge-log-secret", "emojicast_edge_1234"}, "--edge-log-listen needs --trusted-proxies"},
		{"edge feed without secret", rolePull, append(redis, "--edge-log-listen", "127.0.0.1:0", "--trusted-proxies", "10.0.0.1"), "--edge-log-listen needs --edge-log-secret"},
		{"archive without redis", roleServe, []string{"--archive-dsn", "postgres://127.0.0.1:1/archive"}, "--archive-dsn needs --redis"},
		{"archive without history", rolePull, append(redis, "--archive-dsn", "postgres://127.0.0.1:1/archive", "--history", "0s"), "--archive-dsn needs a positive --history"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := configOf(t, tc.role, tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("newNodeConfig(%s %q) = %v; want an error with %q", tc.role.name, tc.args, err, tc.want)
			}
		})
	}
}

// TestNodeConfigAccepts: the defaults make a working configuration, and
// what the flags name is parsed once, for every part to use.
func TestNodeConfigAccepts(t *testing.T) {
	c, err := configOf(t, roleServe, "--token-secret", "0123456789abcdef", "--trusted-proxies", "10.0.0.0/8",
		"--admin-token", "ops:0123456789abcdef-ops", "--cors-origins", "https://example.com")
	if err != nil {
		t.Fatal(err)
	}
	if c.signer == nil || len(c.proxies) != 1 || len(c.adminTokens) != 1 || len(c.corsOrigins) != 1 || c.emojis == nil {
		t.Fatalf("config %+v lacks a part its flags name", c)
	}
	if c.edges != nil || c.jwt != nil {
		t.Fatal("config has an edge feed or JWT keys its flags do not name")
	}
	if c, err = configOf(t, rolePush, "--redis", "127.0.0.1:1"); err != nil || c.signer != nil {
		t.Fatalf("push with only --redis: %+v, %v; want a config without tokens", c, err)
	}
}

// TestNodeClosesWhatItOpenedWhenItCannotStart: a node whose listener
// cannot open closes what assembly opened, once: here the edge
// log feed's UDP socket, which is free again afterwards.
func TestNodeClosesWhatItOpenedWhenItCannotStart(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	feedAddr := freeUDP(t)
	cfg, err := configOf(t, roleServe, "--listen", taken.Addr().String(), "--trusted-proxies", "127.0.0.1",
		"--edge-log-listen", feedAddr, "--edge-log-secret", "emojicast_edge_1234")
	if err != nil {
		t.Fatal(err)
	}
	n, err := assemble(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	n.cleanup = append(n.cleanup, func() { order = append(order, "last opened") })
	if _, err := n.start(); err == nil || !strings.Contains(err.Error(), "cannot listen on") {
		t.Fatalf("start with its address taken: %v; want cannot listen", err)
	}
	if len(order) != 1 || n.cleanup != nil {
		t.Fatalf("cleanup ran %d times and left %d steps; want once, none left", len(order), len(n.cleanup))
	}
	again, err := net.ListenPacket("udp", feedAddr)
	if err != nil {
		t.Fatalf("the edge feed's socket is still open after the failed start: %v", err)
	}
	_ = again.Close()
}

// freeUDP returns a loopback UDP address nothing listens on.
func freeUDP(t *testing.T) string {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().String()
}
