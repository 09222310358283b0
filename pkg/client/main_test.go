package client_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when any goroutine outlives the tests: the
// brokers and proxies are closed by then, so a goroutine left would be the
// client's.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
