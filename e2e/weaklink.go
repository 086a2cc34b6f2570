package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	toxiproxy "github.com/Shopify/toxiproxy/v2/client"

	"github.com/emojicast/emojicast/internal/testutil"
)

// toxiproxyBinary builds Toxiproxy's server once per test run (go.mod's
// tool directive pins it).
func toxiproxyBinary(t *testing.T) string {
	t.Helper()
	return testutil.Binary(t, "github.com/Shopify/toxiproxy/v2/cmd/server", false)
}

// startToxiproxy runs Toxiproxy's server on a free port until the test
// ends and returns a client of its API.
func startToxiproxy(t *testing.T) *toxiproxy.Client {
	t.Helper()
	port := testutil.FreePort(t)
	cmd := exec.Command(toxiproxyBinary(t), "-host", "127.0.0.1", "-port", fmt.Sprint(port))
	cmd.Env = append(os.Environ(), "LOG_LEVEL=warn")
	startCommand(t, "toxiproxy", cmd)
	tc := toxiproxy.NewClient(fmt.Sprintf("127.0.0.1:%d", port))
	testutil.Eventually(t, 10*time.Second, "toxiproxy answers", func() bool {
		_, err := tc.Proxies()
		return err == nil
	})
	return tc
}

func newWeakLink(t *testing.T, tc *toxiproxy.Client, name string, upstream *proc) *weakLink {
	t.Helper()
	listen := fmt.Sprintf("127.0.0.1:%d", testutil.FreePort(t))
	p, err := tc.CreateProxy(name, listen, hostOf(t, upstream.url))
	if err != nil {
		t.Fatal(err)
	}
	return &weakLink{name: name, proxy: p, url: "http://" + listen}
}

// toxic adds a toxic to both directions.
func (l *weakLink) toxic(t *testing.T, name, kind string, attrs toxiproxy.Attributes) {
	for _, dir := range []string{"upstream", "downstream"} {
		if _, err := l.proxy.AddToxic(name+"-"+dir, kind, dir, 1, attrs); err != nil {
			t.Errorf("%s: cannot add %s toxic: %v", l.name, kind, err)
		}
	}
}

func (l *weakLink) removeToxic(t *testing.T, name string) {
	for _, dir := range []string{"upstream", "downstream"} {
		if err := l.proxy.RemoveToxic(name + "-" + dir); err != nil {
			t.Errorf("%s: cannot remove toxic %s: %v", l.name, name, err)
		}
	}
}

// weakLink is one proxy with its faults, and the URL clients use.
type weakLink struct {
	name  string
	proxy *toxiproxy.Proxy
	url   string
}
