package main

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/emojicast/emojicast/admin"
	"github.com/emojicast/emojicast/clientip"
	"github.com/emojicast/emojicast/edgelog"
	"github.com/emojicast/emojicast/emoji"
	"github.com/emojicast/emojicast/server"
	"github.com/emojicast/emojicast/token"
)

// nodeConfig is a node's configuration: its flags, parsed, and checked
// against each other. Every refusal of a flag or of a combination of
// flags is made here (config_test.go has a case per refusal), before the
// node opens a store or a socket; what the parts' own options refuse
// (pull's next_ms bounds, a Redis URL) stays with them.
type nodeConfig struct {
	role  role
	flags *nodeFlags

	emojis      *emoji.Set
	signer      *token.Signer      // nil: no anonymous tokens
	jwt         *token.JWTVerifier // nil: no identity JWTs
	proxies     []netip.Prefix
	corsOrigins []string
	adminTokens []admin.Token // nil: no operators' API
	// edges are the edges whose log feed counts viewers; nil: no feed.
	edges *clientip.Resolver
}

// newNodeConfig parses and checks the flags of role r.
func newNodeConfig(r role, f *nodeFlags) (*nodeConfig, error) {
	if err := checkCombinations(r, f); err != nil {
		return nil, err
	}
	c := &nodeConfig{role: r, flags: f}
	var err error
	if c.emojis, err = emoji.Parse(f.emojis); err != nil {
		return nil, err
	}
	if c.signer, err = newSigner(f); err != nil {
		return nil, err
	}
	if f.jwtKeys != "" {
		if c.jwt, err = token.LoadJWTKeys(f.jwtKeys); err != nil {
			return nil, fmt.Errorf("invalid --jwt-keys: %w", err)
		}
		c.jwt.SetRules(token.JWTRules{Audience: f.jwtAudience, Issuer: f.jwtIssuer, MaxLifetime: f.jwtMaxLifetime})
	}
	if c.proxies, err = clientip.ParsePrefixes(f.trustedProxies); err != nil {
		return nil, fmt.Errorf("invalid --trusted-proxies: %w", err)
	}
	if c.corsOrigins, err = server.ParseCORSOrigins(f.corsOrigins); err != nil {
		return nil, fmt.Errorf("invalid --cors-origins: %w", err)
	}
	if f.adminToken != "" {
		if c.adminTokens, err = admin.ParseTokens(f.adminToken); err != nil {
			return nil, fmt.Errorf("invalid --admin-token: %w", err)
		}
	}
	if r.pull && f.edgeLogListen != "" {
		if len(c.proxies) == 0 {
			return nil, errors.New("--edge-log-listen needs --trusted-proxies: the edges whose log lines count")
		}
		if err := edgelog.Secret(f.edgeLogSecret); err != nil {
			return nil, fmt.Errorf("--edge-log-listen needs --edge-log-secret: %w", err)
		}
		c.edges = clientip.New(c.proxies)
	}
	return c, nil
}

// checkCombinations refuses flags that make no sense together.
func checkCombinations(r role, f *nodeFlags) error {
	switch {
	case r.push && f.sealDelay <= f.flushInterval:
		return fmt.Errorf("--seal-delay %v must exceed --flush-interval %v, or taps would arrive after their second is published", f.sealDelay, f.flushInterval)
	case r.needsRedis && f.redis == "":
		return fmt.Errorf("%s needs --redis (or EMOJICAST_REDIS): push and pull nodes share counts through it", r.name)
	case f.minReplicas < 0 || f.minReplicas > 0 && f.redis == "":
		return fmt.Errorf("--redis-min-replicas %d needs --redis and must not be negative", f.minReplicas)
	case len(f.regionRedis) > 0 && f.redis == "":
		return errors.New("--region-redis needs --redis: regions share counts through Redis")
	case f.tokenSecret == "" && f.tokenSecretPrev != "":
		return errors.New("--token-secret-previous needs --token-secret")
	case f.jwtKeys != "" && f.jwtMaxLifetime <= 0:
		return fmt.Errorf("invalid --jwt-max-lifetime %v: want a positive duration", f.jwtMaxLifetime)
	case f.archiveDSN != "" && f.redis == "":
		return errors.New("--archive-dsn needs --redis: the archiver drains Redis")
	case f.archiveDSN != "" && f.history <= 0:
		return errors.New("--archive-dsn needs a positive --history: what Redis keeps, older ranges are read from the archive")
	}
	return nil
}

func newSigner(f *nodeFlags) (*token.Signer, error) {
	if f.tokenSecret == "" {
		return nil, nil
	}
	ttl := f.tokenTTL
	if ttl <= 0 {
		ttl = token.DefaultTTL // push nodes only verify tokens; the TTL is the issuer's
	}
	return token.NewSigner([]byte(f.tokenSecret), []byte(f.tokenSecretPrev), ttl)
}
