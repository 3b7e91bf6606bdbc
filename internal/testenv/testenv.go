// Package testenv gives tests real servers on loopback: a fresh PostgreSQL
// database per test, and S3 buckets on a versitygw gateway started by the
// test binary. It never mocks and never skips: when a server is missing the
// test fails and says how to provide it (scripts/test.sh does it all).
//
// It is for _test.go files only and must not be imported by production
// code. It imports internal/blob (for S3Config) and nothing else of ours.
package testenv

import (
	"crypto/rand"
	"encoding/hex"
)

// randHex returns n random bytes as hex, for names no other test will pick.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux (getrandom), per crypto/rand's doc
	return hex.EncodeToString(b)
}
