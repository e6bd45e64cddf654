package shell

import (
	"os"
	"testing"
)

// TestMain lets the test binary be the helper the executor re-executes, as
// cmd/aspen's main is in production.
func TestMain(m *testing.M) {
	MaybeRunHelper()
	os.Exit(m.Run())
}
