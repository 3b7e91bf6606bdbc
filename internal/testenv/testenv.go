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
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Program finds a server program the tests run: the path in the
// environment variable env if set, else name on PATH, else in
// $(go env GOPATH)/bin, where scripts/test.sh installs them.
func Program(name, env string) (string, error) {
	if p := os.Getenv(env); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%s=%q: %w", env, p, err)
		}
		return p, nil
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		for gp := range strings.SplitSeq(strings.TrimSpace(string(out)), string(os.PathListSeparator)) {
			p := filepath.Join(gp, "bin", name)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("%s not found (tried $%s, PATH, $(go env GOPATH)/bin)", name, env)
}

// randHex returns n random bytes as hex, for names no other test will pick.
func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails on Linux (getrandom), per crypto/rand's doc
	return hex.EncodeToString(b)
}
