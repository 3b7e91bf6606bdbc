package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/transcribe/transcribetest"
)

// shBlocks returns the ```sh blocks of a markdown file, between the
// markers when they are given.
func shBlocks(t *testing.T, path, begin, end string) []string {
	t.Helper()
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	text := string(raw)
	if begin != "" {
		_, text, _ = strings.Cut(text, begin)
		text, _, _ = strings.Cut(text, end)
	}
	var out []string
	for _, m := range regexp.MustCompile("(?s)```sh\n(.*?)```\n").FindAllStringSubmatch(text, -1) {
		out = append(out, m[1])
	}
	require.NotEmpty(t, out, "%s has sh blocks", path)
	return out
}

// shell is one bash, in a directory that holds greffier-data as the docs
// expect, that runs blocks one after the other with their variables kept
// between them, as a reader pasting them into one terminal would.
type shell struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr *strings.Builder
	n      int
}

func startShell(t *testing.T, dir, greffierURL string) *shell {
	t.Helper()
	for _, tool := range []string{"bash", "curl", "jq"} {
		_, err := exec.LookPath(tool)
		require.NoError(t, err, "the docs' walk-throughs need %s: scripts/test.sh installs it", tool)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	// -e and pipefail: a command of the docs that fails fails the test.
	cmd := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-e", "-o", "pipefail")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GREFFIER="+greffierURL)
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	s := &shell{cmd: cmd, stdin: stdin, out: bufio.NewReader(stdout), stderr: &strings.Builder{}}
	cmd.Stderr = s.stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	return s
}

// run runs one block and returns what it printed.
func (s *shell) run(t *testing.T, block string) string {
	t.Helper()
	s.n++
	marker := fmt.Sprintf("__block_%d_done__", s.n)
	_, err := io.WriteString(s.stdin, block+"\necho "+marker+"\n")
	require.NoError(t, err)
	var out strings.Builder
	for {
		line, err := s.out.ReadString('\n')
		if strings.TrimSpace(line) == marker {
			return out.String()
		}
		out.WriteString(line)
		require.NoError(t, err, "the block failed:\n%s\noutput:\n%s\nstderr:\n%s", block, out.String(), s.stderr.String())
	}
}

// TestTheDocsWalkThroughsRunAsWritten runs docs/api.md's walk-throughs, as
// written, against a whole Greffier: the admin gives out keys, a host holds
// a meeting (the participants speak in between, as the text says), an
// archivist downloads its recordings, an agent searches and reads the
// minutes, and the admin reads the audit log.
func TestTheDocsWalkThroughsRunAsWritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, setupOptions{dataDir: filepath.Join(dir, "greffier-data")})
	blocks := shBlocks(t, "../../docs/api.md", "<!-- walkthrough:begin -->", "<!-- walkthrough:end -->")
	require.Len(t, blocks, 6)
	sh := startShell(t, dir, b.url)

	out := sh.run(t, blocks[0])
	require.Regexp(t, `key_\w+ host Hélène \(host\)`, out)
	require.Regexp(t, `key_\w+ agent Indexer`, out)

	out = sh.run(t, blocks[1])
	require.Contains(t, out, "Alice Martin: "+b.cfg.publicURL()+"/join/#token=")
	require.Contains(t, out, "Bob Durand: ")
	// The participants open their links and speak: their tokens are the
	// ones the host sent (the block kept the answer in meeting.json).
	raw, err := os.ReadFile(filepath.Join(dir, "meeting.json"))
	require.NoError(t, err)
	var m meetingAnswer
	require.NoError(t, json.Unmarshal(raw, &m))
	require.Len(t, m.Join, 2)
	for _, p := range b.publishAll(t, m) {
		require.NoError(t, p.Close(context.Background()))
	}

	out = sh.run(t, blocks[2])
	require.True(t, strings.HasPrefix(out, "ended\nready\n"), "%s", out)
	require.Contains(t, out, "bravo charlie")

	out = sh.run(t, blocks[3])
	require.Contains(t, out, "alice ")
	require.Contains(t, out, "meeting.webm")
	require.FileExists(t, filepath.Join(dir, "meeting.webm"))

	out = sh.run(t, blocks[4])
	// When Alice speaks on the meeting clock depends on how fast the
	// participants joined; that she is found, with a time, is what counts.
	require.Regexp(t, `Alice Martin at \d+\.\d+s in mtg_`, out)
	require.Contains(t, out, "unchanged: 304\n")
	require.Contains(t, out, "end as an agent: 403\n")

	out = sh.run(t, blocks[5])
	require.Contains(t, out, "Hélène (host): POST /v1/meetings/{id}/end -> 202")
	require.Contains(t, out, "Indexer: POST /v1/meetings/{id}/end -> 403")
	require.Contains(t, out, "Archives: GET /v1/meetings/{id}/archive.webm -> 200")
}

// TestTheDocsImportRunsAsWritten runs docs/api.md's import example, as
// written, with an archivist's key: the file is uploaded, imported by the
// job, and its minutes read.
func TestTheDocsImportRunsAsWritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, setupOptions{dataDir: filepath.Join(dir, "greffier-data")})
	blocks := shBlocks(t, "../../docs/api.md", "<!-- import:begin -->", "<!-- import:end -->")
	require.Len(t, blocks, 1)
	alice, err := os.ReadFile(filepath.Join(fixtures, "alice.opus"))
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "alice.ogg"), alice, 0o600))
	var k struct{ Key string }
	require.Equal(t, http.StatusCreated, b.call(t, "POST", "/v1/keys", map[string]any{"name": "Archives", "role": "archivist"}, &k))
	sh := startShell(t, dir, b.url)
	sh.run(t, "ARCHIVIST_KEY="+k.Key)

	out := sh.run(t, blocks[0])
	require.Contains(t, out, strconv.Itoa(len(alice))+" bytes, ogg\n")
	require.Contains(t, out, "ready: 1 of 1 files imported\n")
	script, err := transcribetest.ReadScript(filepath.Join(fixtures, "script.json"))
	require.NoError(t, err)
	said := 0
	for _, u := range script.Utterances {
		if u.Speaker == "alice" {
			require.Contains(t, out, u.Text)
			said++
		}
	}
	require.Positive(t, said)
	require.Contains(t, out, "Alice Martin")
}

// TestTheREADMEsExampleRunsAsWritten runs the README's example.
func TestTheREADMEsExampleRunsAsWritten(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	b := setup(t, setupOptions{dataDir: filepath.Join(dir, "greffier-data")})
	var block string
	for _, bl := range shBlocks(t, "../../README.md", "", "") {
		if strings.Contains(bl, "/v1/meetings") {
			block = bl
		}
	}
	require.NotEmpty(t, block, "the README has an example of the API")
	out := startShell(t, dir, b.url).run(t, block)
	require.Contains(t, out, "Alice Martin: "+b.cfg.publicURL()+"/join/#token=")
	var list struct{ Meetings []meetingAnswer }
	require.Equal(t, http.StatusOK, b.call(t, "GET", "/v1/meetings", nil, &list))
	require.Len(t, list.Meetings, 1)
	require.Contains(t, out, `"id": "`+list.Meetings[0].ID+`"`, "$ID was set, and the meeting read")
	require.NotEqual(t, "ended", list.Meetings[0].State, "ended, then waited for")
	// The last line prints the minutes as WebVTT (nobody spoke: no cue).
	require.Contains(t, out, "WEBVTT", "the minutes read as the README says")
}
