package testenv_test

import (
	"testing"

	"go.uber.org/goleak"
)

// testenv promises to start no goroutines (exec gets files, not pipes;
// the gateway is polled, not waited on), so packages using goleak can use
// it. Idle keep-alive connections of HTTP clients are not ours.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"),
	)
}
