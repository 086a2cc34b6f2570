package e2e

// The Cache-Control of the answers a cache may keep (pull/expires.go,
// pull/history.go; docs/api.md): polls state their freshness with Expires.
const (
	pollCaching           = "public, stale-while-revalidate=1, stale-if-error=10"
	historySealedCaching  = "public, max-age=30, stale-while-revalidate=30, stale-if-error=3600"
	historyPartialCaching = "public, max-age=1, stale-while-revalidate=1, stale-if-error=10"
)
