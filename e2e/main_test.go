package e2e

import (
	"os"
	"testing"

	"github.com/emojicast/emojicast/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testutil.RemoveBinaries()
	os.Exit(code)
}
