package main

import (
	"context"
	"encoding/json"
	"io"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/transcribe"
)

// TestSpoolMinFreeIsConfigurable: the free space a publisher needs is set
// like every other setting (file, then environment, then flag), with units,
// and a nonsense value is refused at start with what to set.
func TestSpoolMinFreeIsConfigurable(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	cfg, err := LoadConfig(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, ByteSize(256<<20), cfg.SpoolMinFree)

	file := filepath.Join(t.TempDir(), "g.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"spool_min_free": "1GiB"}`), 0o600))
	cfg, err = LoadConfig(nil, env(map[string]string{"GREFFIER_CONFIG": file}))
	require.NoError(t, err)
	require.Equal(t, ByteSize(1<<30), cfg.SpoolMinFree)

	cfg, err = LoadConfig(nil, env(map[string]string{"GREFFIER_CONFIG": file, "GREFFIER_SPOOL_MIN_FREE": "512MiB"}))
	require.NoError(t, err)
	require.Equal(t, ByteSize(512<<20), cfg.SpoolMinFree)

	cfg, err = LoadConfig([]string{"--spool-min-free", "0"}, env(map[string]string{"GREFFIER_SPOOL_MIN_FREE": "512MiB"}))
	require.NoError(t, err)
	require.Equal(t, ByteSize(0), cfg.SpoolMinFree, "0 turns the check off")

	for in, want := range map[string]ByteSize{"1048576": 1 << 20, "64 KiB": 64 << 10, "2g": 2 << 30, "10MB": 10 << 20} {
		got, err := ParseByteSize(in)
		require.NoError(t, err, in)
		require.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "-1", "lots", "1.5GiB", "99999999999TiB"} {
		_, err := ParseByteSize(bad)
		require.Error(t, err, bad)
	}
	_, err = LoadConfig(nil, env(map[string]string{"GREFFIER_SPOOL_MIN_FREE": "-5"}))
	require.ErrorContains(t, err, "256MiB")
}

// sampleValue is a valid value of a setting other than its default, as a
// flag would hold it.
func sampleValue(s setting) string {
	switch s.Name {
	case "segment-merge": // at most segment-max, 30s by default
		return "25s"
	case "roles": // a subset needs Postgres and S3
		return "worker,sfu,api"
	}
	switch s.Type {
	case "bool":
		if s.Default == "true" {
			return "false"
		}
		return "true"
	case "int":
		return "7"
	case "duration":
		return "42s"
	case "size":
		return "3MiB"
	case "list":
		return "192.0.2.1,192.0.2.2"
	}
	switch {
	case strings.HasSuffix(s.Name, "-url"):
		return "http://192.0.2.9:1234/x"
	case s.Name == "language":
		return "fr"
	case s.Name == "log-level":
		return "debug"
	case s.Name == "log-format":
		return "json"
	case s.Name == "join-secret":
		return strings.Repeat("j", 40)
	case s.Name == "import-opusenc": // checked at start: it must be a program on PATH
		return "sh"
	}
	return "sample-" + s.Name
}

// withS3 completes a configuration so that one S3 setting alone passes
// validation.
func withS3(env map[string]string) map[string]string {
	for _, k := range []string{"GREFFIER_S3_ENDPOINT", "GREFFIER_S3_BUCKET", "GREFFIER_S3_ACCESS_KEY", "GREFFIER_S3_SECRET_KEY"} {
		if env[k] == "" {
			env[k] = "x"
		}
	}
	return env
}

// withLiveKit completes env with the LiveKit settings that go together.
func withLiveKit(env map[string]string) map[string]string {
	for k, v := range map[string]string{"GREFFIER_LIVEKIT_URL": "ws://192.0.2.9:7880", "GREFFIER_LIVEKIT_API_KEY": "x",
		"GREFFIER_LIVEKIT_API_SECRET": "x"} {
		if env[k] == "" {
			env[k] = v
		}
	}
	return env
}

func getenvOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

// TestEverySettingHasAFlagAVariableADefaultAndHelp: the table is whole,
// its names are derived one way and unique, and its defaults parse and
// agree with the constants the packages use.
func TestEverySettingHasAFlagAVariableADefaultAndHelp(t *testing.T) {
	t.Parallel()
	seen := map[string]string{}
	claim := func(name, by string) {
		other, dup := seen[name]
		require.False(t, dup, "%s is claimed by %s and %s", name, other, by)
		seen[name] = by
	}
	ft := reflect.TypeFor[Config]()
	table := settings()
	require.Len(t, table, ft.NumField(), "every Config field is a setting")
	for _, s := range table {
		f := ft.Field(s.index)
		require.Regexp(t, `^[a-z][a-z0-9]*(-[a-z0-9]+)*$`, s.Name, "field %s needs a setting:\"kebab-name\" tag", f.Name)
		_, hasDefault := f.Tag.Lookup("default")
		require.True(t, hasDefault, "setting %s needs a default tag (default:\"\" for none)", s.Name)
		require.NotEmpty(t, s.Help, "setting %s needs a help tag", s.Name)
		require.Equal(t, "GREFFIER_"+strings.ToUpper(strings.ReplaceAll(s.Name, "-", "_")), s.Env)
		require.Contains(t, []string{"string", "bool", "int", "duration", "size", "list"}, s.Type, s.Name)
		claim("--"+s.Name, s.Name)
		claim(s.Env, s.Name)
		claim(s.Key, s.Name)
		for _, a := range s.Aliases {
			claim("--"+a, s.Name)
		}
		if s.Secret {
			claim("--"+s.Name+"-file", s.Name)
			claim(s.Env+"_FILE", s.Name)
		}
	}
	claim("--config", "config")
	claim("GREFFIER_CONFIG", "config")

	d := DefaultConfig()
	require.Equal(t, ByteSize(recorder.DefaultMinFreeBytes), d.SpoolMinFree)
	require.Equal(t, recorder.DefaultMaxConcealedLoss, d.MaxConcealedLoss)
	require.Equal(t, DefaultIdleEndAfter, d.IdleEndAfter)
	require.Equal(t, diarize.DefaultPollInterval, d.DiarizePollInterval)
	require.Equal(t, transcribe.DefaultBreakerCoolDown, d.TranscribeBreakerCoolDown)
	require.Equal(t, jobs.DefaultMaxAttempts, d.JobMaxAttempts)
	require.Equal(t, jobs.DefaultRetryBase, d.JobRetryBase)
	require.Equal(t, jobs.DefaultSnoozeBudget, d.JobSnoozeBudget)
	require.Equal(t, jobs.DefaultTranscribeWorkers, d.TranscribeConcurrency)
	require.NoError(t, d.validate(), "the defaults are a valid configuration")
}

// TestFlagVariableAndFileSetTheSameSetting sets every setting each of the
// three ways and checks each lands in the same field, with flags over
// variables over the file, and `greffier config` says where each came
// from.
func TestFlagVariableAndFileSetTheSameSetting(t *testing.T) {
	t.Parallel()
	for _, s := range settings() {
		value := sampleValue(s)
		want := DefaultConfig()
		require.NoError(t, setField(reflect.ValueOf(&want).Elem().Field(s.index), value), s.Name)
		field := func(c Config) any { return reflect.ValueOf(c).Field(s.index).Interface() }
		env := map[string]string{}
		if strings.HasPrefix(s.Name, "s3-") && s.Name != "s3-region" && s.Name != "s3-use-ssl" {
			env = withS3(env)
			delete(env, s.Env)
		}
		if strings.HasPrefix(s.Name, "livekit-") {
			env = withLiveKit(env)
			delete(env, s.Env)
		}
		// Settings valid only with their partner set.
		if partner, ok := map[string]string{"kek-previous-file": "GREFFIER_KEK_FILE",
			"tls-cert-file": "GREFFIER_TLS_KEY_FILE", "tls-key-file": "GREFFIER_TLS_CERT_FILE"}[s.Name]; ok {
			env[partner] = "x"
		}

		byFlag, src, err := loadConfig("serve", []string{"--" + s.Name + "=" + value}, getenvOf(env), io.Discard)
		require.NoError(t, err, s.Name)
		require.Equal(t, field(want), field(byFlag), "flag --%s", s.Name)
		require.Equal(t, SourceFlag, src[s.Name])

		envSet := maps.Clone(env)
		envSet[s.Env] = value
		byEnv, src, err := loadConfig("serve", nil, getenvOf(envSet), io.Discard)
		require.NoError(t, err, s.Name)
		require.Equal(t, field(want), field(byEnv), "variable %s", s.Env)
		require.Equal(t, SourceEnv, src[s.Name])

		file := filepath.Join(t.TempDir(), "g.json")
		raw, err := json.Marshal(map[string]string{s.Key: value})
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(file, raw, 0o600))
		fileEnv := maps.Clone(env)
		fileEnv["GREFFIER_CONFIG"] = file
		byFile, src, err := loadConfig("serve", nil, getenvOf(fileEnv), io.Discard)
		require.NoError(t, err, s.Name)
		require.Equal(t, field(want), field(byFile), "file key %s", s.Key)
		require.Equal(t, SourceFile, src[s.Name])

		// The flag wins over the variable, which wins over the file.
		fileEnv[s.Env] = value
		both, src, err := loadConfig("serve", []string{"--" + s.Name + "=" + value}, getenvOf(fileEnv), io.Discard)
		require.NoError(t, err)
		require.Equal(t, field(want), field(both))
		require.Equal(t, SourceFlag, src[s.Name])
	}
	// Precedence with different values.
	file := filepath.Join(t.TempDir(), "g.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"http_addr": "file:1", "media_addr": "file:2", "language": "de", "public_ips": ["192.0.2.7"], "job_max_attempts": 3, "s3_use_ssl": true}`), 0o600))
	cfg, err := LoadConfig([]string{"--http-addr", "flag:1"}, getenvOf(map[string]string{"GREFFIER_CONFIG": file,
		"GREFFIER_HTTP_ADDR": "env:1", "GREFFIER_MEDIA_ADDR": "env:2"}))
	require.NoError(t, err)
	require.Equal(t, "flag:1", cfg.HTTPAddr)
	require.Equal(t, "env:2", cfg.MediaAddr)
	require.Equal(t, "de", cfg.Language)
	require.Equal(t, []string{"192.0.2.7"}, cfg.PublicIPs)
	require.Equal(t, 3, cfg.JobMaxAttempts)
	require.True(t, cfg.S3UseSSL)
}

// TestOldFlagNamesStillWork: the flags named before they matched the
// variables are still accepted (and not shown).
func TestOldFlagNamesStillWork(t *testing.T) {
	t.Parallel()
	cfg, err := LoadConfig([]string{"-data", "/tmp/d", "-http", "h:1", "-media", "m:2", "-public-ip", "192.0.2.1", "-postgres", "postgres://x@h/db"},
		getenvOf(nil))
	require.NoError(t, err)
	require.Equal(t, "/tmp/d", cfg.DataDir)
	require.Equal(t, "h:1", cfg.HTTPAddr)
	require.Equal(t, "m:2", cfg.MediaAddr)
	require.Equal(t, []string{"192.0.2.1"}, cfg.PublicIPs)
	require.Equal(t, "postgres://x@h/db", cfg.PostgresURL)
	var help strings.Builder
	require.NoError(t, run(context.Background(), []string{"serve", "-h"}, getenvOf(nil), &help, io.Discard))
	require.NotContains(t, help.String(), "--data ")
	require.NotContains(t, help.String(), "--http ")
}

// TestServeHelpShowsTypesAndDefaultsAndExitsZero: -h is an answer, not an
// error, and lists every setting with its type, default and variable.
func TestServeHelpShowsTypesAndDefaultsAndExitsZero(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"serve", "-h"}, {"serve", "--help"}, {"config", "-h"}} {
		var out, errOut strings.Builder
		require.NoError(t, run(context.Background(), args, getenvOf(nil), &out, &errOut), args)
		require.Empty(t, errOut.String())
		help := out.String()
		for _, s := range settings() {
			require.Contains(t, help, "--"+s.Name+" "+s.Type+"\n", args)
			require.Contains(t, help, "env "+s.Env+",", args)
		}
		require.Contains(t, help, `(env GREFFIER_DATA_DIR, default "greffier-data")`)
		require.Contains(t, help, "(env GREFFIER_HTTP_WRITE_TIMEOUT, default 1m)")
		require.Contains(t, help, "(env GREFFIER_SPOOL_MIN_FREE, default 256MiB)")
		require.Contains(t, help, "(env GREFFIER_API_TOKEN, default none; or --api-token-file / GREFFIER_API_TOKEN_FILE)")
	}
	var out strings.Builder
	require.NoError(t, run(context.Background(), []string{"help"}, getenvOf(nil), &out, io.Discard))
	for _, cmd := range []string{"serve", "config", "version", "meetings", "meeting create", "minutes", "download", "search", "keys"} {
		require.Contains(t, out.String(), cmd)
	}
	require.ErrorIs(t, run(context.Background(), []string{"frobnicate"}, getenvOf(nil), io.Discard, io.Discard), errUsage)
}

// TestConfigErrorsNameTheSetting: whatever is wrong, the message names
// the flag and the variable to change.
func TestConfigErrorsNameTheSetting(t *testing.T) {
	t.Parallel()
	cases := []struct {
		args    []string
		env     map[string]string
		setting string
		says    string
	}{
		{env: map[string]string{"GREFFIER_JOB_MAX_ATTEMPTS": "many"}, setting: "job-max-attempts", says: "whole number"},
		{args: []string{"--idle-end-after", "soon"}, setting: "idle-end-after", says: "duration"},
		{args: []string{"--s3-use-ssl=maybe"}, setting: "s3-use-ssl", says: "true or false"},
		{args: []string{"--spool-min-free", "lots"}, setting: "spool-min-free", says: "256MiB"},
		{env: map[string]string{"GREFFIER_TRANSCRIBE_CONCURRENCY": "0"}, setting: "transcribe-concurrency", says: "at least 1"},
		{env: map[string]string{"GREFFIER_JOIN_SECRET": "short"}, setting: "join-secret", says: "32"},
		{env: map[string]string{"GREFFIER_LANGUAGE": "klingon!"}, setting: "language", says: "language tag"},
		{env: map[string]string{"GREFFIER_LOG_FORMAT": "xml"}, setting: "log-format", says: "text or json"},
		{env: map[string]string{"GREFFIER_LOG_LEVEL": "loud"}, setting: "log-level", says: "debug, info"},
		{env: map[string]string{"GREFFIER_TRANSCRIBE_URL": "127.0.0.1:8000"}, setting: "transcribe-url", says: "absolute URL"},
		{env: map[string]string{"GREFFIER_S3_ENDPOINT": "s3:9000"}, setting: "s3-bucket", says: "missing"},
		{env: map[string]string{"GREFFIER_HTTP_WRITE_TIMEOUT": "0s"}, setting: "http-write-timeout", says: "positive"},
		{env: map[string]string{"GREFFIER_DATA_DIR": ""}, args: []string{"--data-dir="}, setting: "data-dir", says: "empty"},
		{env: map[string]string{"GREFFIER_API_TOKEN_FILE": "/nonexistent/token"}, setting: "api-token", says: "read the secret's file"},
		{env: map[string]string{"GREFFIER_LIVEKIT_URL": "wss://lk.example.org"}, setting: "livekit-api-secret", says: "API secret"},
		{env: map[string]string{"GREFFIER_LIVEKIT_URL": "lk.example.org:7880", "GREFFIER_LIVEKIT_API_KEY": "k",
			"GREFFIER_LIVEKIT_API_SECRET": "s"}, setting: "livekit-url", says: "wss://"},
		{env: withLiveKit(map[string]string{"GREFFIER_LIVEKIT_AUTO_RECORD": "council-["}), setting: "livekit-auto-record", says: "pattern"},
		{env: map[string]string{"GREFFIER_LIVEKIT_AUTO_RECORD": "*"}, setting: "livekit-auto-record", says: "livekit-url"},
		{args: []string{"--roles", "api,worker"}, setting: "roles", says: "only makes sense with several nodes on one Postgres"},
		{args: []string{"--roles", "sfu", "--postgres-url", "postgres://db/greffier"}, setting: "roles", says: "set s3-endpoint"},
		{env: map[string]string{"GREFFIER_ROLES": "api,media"}, setting: "roles", says: `unknown role "media"`},
		{env: map[string]string{"GREFFIER_NODE_URL": "10.0.0.2:8080"}, setting: "node-url", says: "absolute http(s) URL"},
		{env: map[string]string{"GREFFIER_NODE_TIMEOUT": "100ms"}, setting: "node-timeout", says: "at least 1s"},
	}
	for _, c := range cases {
		_, err := LoadConfig(c.args, getenvOf(c.env))
		require.Error(t, err, "%+v", c)
		s := settingByName(c.setting)
		require.Contains(t, err.Error(), "--"+s.Name, "%+v", c)
		require.Contains(t, err.Error(), s.Env, "%+v", c)
		require.Contains(t, err.Error(), c.says, "%+v", c)
	}
	file := filepath.Join(t.TempDir(), "g.json")
	require.NoError(t, os.WriteFile(file, []byte(`{"http_adr": "x"}`), 0o600))
	_, err := LoadConfig(nil, getenvOf(map[string]string{"GREFFIER_CONFIG": file}))
	require.ErrorContains(t, err, `unknown setting "http_adr"`)
	require.NoError(t, os.WriteFile(file, []byte(`{"job_max_attempts": "x"}`), 0o600))
	_, err = LoadConfig(nil, getenvOf(map[string]string{"GREFFIER_CONFIG": file}))
	require.ErrorContains(t, err, "GREFFIER_JOB_MAX_ATTEMPTS")
	_, err = LoadConfig([]string{"stray"}, getenvOf(nil))
	require.ErrorContains(t, err, "unexpected arguments: stray")
	_, err = LoadConfig([]string{"--datadir", "x"}, getenvOf(nil))
	require.ErrorContains(t, err, "-h lists the settings")
	cfg, err := LoadConfig([]string{"--s3-use-ssl", "--webhook-allow-private=false"}, getenvOf(nil))
	require.NoError(t, err)
	require.True(t, cfg.S3UseSSL, "a bare boolean flag means true")
	require.False(t, cfg.WebhookAllowPrivate)
}

// TestSecretsComeFromFiles: every secret setting can be read from a file
// named by its _FILE variable, its -file flag or its _file key, trailing
// newline dropped; naming both a value and a file in one place is refused.
func TestSecretsComeFromFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := 0
	for _, s := range settings() {
		if !s.Secret {
			continue
		}
		n++
		value := sampleValue(s)
		path := filepath.Join(dir, s.Name)
		require.NoError(t, os.WriteFile(path, []byte(value+"\n"), 0o600))
		env := map[string]string{}
		if strings.HasPrefix(s.Name, "s3-") {
			env = withS3(env)
			delete(env, s.Env)
		}
		field := func(c Config) string { return reflect.ValueOf(c).Field(s.index).String() }

		fromEnv := maps.Clone(env)
		fromEnv[s.Env+"_FILE"] = path
		cfg, err := LoadConfig(nil, getenvOf(fromEnv))
		require.NoError(t, err, s.Name)
		require.Equal(t, value, field(cfg), s.Env+"_FILE")

		cfg, err = LoadConfig([]string{"--" + s.Name + "-file", path}, getenvOf(env))
		require.NoError(t, err, s.Name)
		require.Equal(t, value, field(cfg), "--"+s.Name+"-file")

		conf := filepath.Join(dir, s.Name+".json")
		raw, _ := json.Marshal(map[string]string{s.Key + "_file": path})
		require.NoError(t, os.WriteFile(conf, raw, 0o600))
		fromFile := maps.Clone(env)
		fromFile["GREFFIER_CONFIG"] = conf
		cfg, err = LoadConfig(nil, getenvOf(fromFile))
		require.NoError(t, err, s.Name)
		require.Equal(t, value, field(cfg), s.Key+"_file")

		fromEnv[s.Env] = value
		_, err = LoadConfig(nil, getenvOf(fromEnv))
		require.ErrorContains(t, err, "both set")
	}
	require.GreaterOrEqual(t, n, 9, "api-token, join-secret, webhook-secret, s3-secret-key, postgres-url and the backends' keys")
	_, err := LoadConfig([]string{"--data-dir-file", "x"}, getenvOf(nil))
	require.Error(t, err, "only secrets are read from files")
}

// TestConfigCommandMasksSecrets: `greffier config` prints what serve would
// run with and where each value came from, with no secret in it.
func TestConfigCommandMasksSecrets(t *testing.T) {
	t.Parallel()
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("tok-SECRET-1\n"), 0o600))
	env := map[string]string{"GREFFIER_API_TOKEN_FILE": tokenFile, "GREFFIER_POSTGRES_URL": "postgres://greffier:pw-SECRET-2@db:5432/g",
		"GREFFIER_S3_ENDPOINT": "s3:9000", "GREFFIER_S3_BUCKET": "b", "GREFFIER_S3_ACCESS_KEY": "AK", "GREFFIER_S3_SECRET_KEY": "sk-SECRET-3",
		"GREFFIER_SUMMARY_KEY": "sum-SECRET-4"}
	var out strings.Builder
	require.NoError(t, run(context.Background(), []string{"config", "--language", "fr"}, getenvOf(env), &out, io.Discard))
	text := out.String()
	require.NotContains(t, text, "SECRET-")
	require.Regexp(t, `api-token\s+\*{8}\s+env`, text)
	require.Regexp(t, `postgres-url\s+postgres://greffier:x+@db:5432/g\s+env`, text)
	require.Regexp(t, `language\s+fr\s+flag`, text)
	require.Regexp(t, `data-dir\s+greffier-data\s+default`, text)
	require.Regexp(t, `join-secret\s+default`, text, "an unset secret shows as empty")

	out.Reset()
	require.NoError(t, run(context.Background(), []string{"config", "--json"}, getenvOf(env), &out, io.Discard))
	require.NotContains(t, out.String(), "SECRET-")
	var rows []struct{ Setting, Variable, Value, Source string }
	require.NoError(t, json.Unmarshal([]byte(out.String()), &rows))
	require.Len(t, rows, len(settings()))

	require.Error(t, run(context.Background(), []string{"config", "--log-level", "loud"}, getenvOf(nil), io.Discard, io.Discard))
}

// TestVersionSaysWhatWasBuilt: the module version and Go's, from the
// build information.
func TestVersionSaysWhatWasBuilt(t *testing.T) {
	t.Parallel()
	var out strings.Builder
	require.NoError(t, run(context.Background(), []string{"version"}, getenvOf(nil), &out, io.Discard))
	require.Regexp(t, `^greffier \S+\ngo\s+go1\.`, out.String())
}

// TestOperationsDocListsEverySetting: the table in docs/operations.md is
// the one the code makes. GREFFIER_UPDATE_DOCS=1 rewrites it.
func TestOperationsDocListsEverySetting(t *testing.T) {
	t.Parallel()
	path := filepath.Join("..", "..", "docs", "operations.md")
	raw, err := os.ReadFile(path)
	require.NoError(t, err)
	const begin, end = "<!-- settings: generated by TestOperationsDocListsEverySetting; GREFFIER_UPDATE_DOCS=1 go test -run TestOperationsDocListsEverySetting ./cmd/greffier -->\n", "<!-- end of settings -->"
	doc := string(raw)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	require.True(t, i >= 0 && j > i, "docs/operations.md needs the markers %q and %q", begin, end)
	want := doc[:i+len(begin)] + settingsMarkdown() + doc[j:]
	if os.Getenv("GREFFIER_UPDATE_DOCS") == "1" {
		require.NoError(t, os.WriteFile(path, []byte(want), 0o644))
		return
	}
	require.True(t, want == doc, "docs/operations.md's settings table is stale: GREFFIER_UPDATE_DOCS=1 go test -run TestOperationsDocListsEverySetting ./cmd/greffier; it should read:\n%s", settingsMarkdown())
}

// TestValidateNamesRealSettings: every setting an error message names by
// its table name (bad("…"), settingByName("…") and the name lists in
// validate) exists, so that no message names a setting that is not there
// (settingByName would panic on it).
func TestValidateNamesRealSettings(t *testing.T) {
	t.Parallel()
	known := map[string]bool{}
	for _, s := range settings() {
		known[s.Name] = true
	}
	re := regexp.MustCompile(`(?:bad|settingByName|badSetting)\("([a-z0-9-]+)"|"([a-z0-9]+(?:-[a-z0-9]+)+)":\s`)
	n := 0
	for _, file := range []string{"config.go", "app.go", "admin.go"} {
		src, err := os.ReadFile(file)
		require.NoError(t, err)
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			name := m[1] + m[2]
			require.True(t, known[name], "%s names %q, which is no setting", file, name)
			n++
		}
	}
	require.Greater(t, n, 20)
}

// TestPublicURLMakesTheJoinLinks: join links start with GREFFIER_PUBLIC_URL,
// or with the HTTP address when it is not set; a URL that cannot be a
// link's base is refused at start.
func TestPublicURLMakesTheJoinLinks(t *testing.T) {
	t.Parallel()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := LoadConfig(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080", cfg.publicURL())
	cfg, err = LoadConfig([]string{"--http", "0.0.0.0:9000"}, env(nil))
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:9000", cfg.publicURL(), "an unspecified host is reached on loopback")
	cfg, err = LoadConfig(nil, env(map[string]string{"GREFFIER_PUBLIC_URL": "https://greffier.example.org/meet"}))
	require.NoError(t, err)
	require.Equal(t, "https://greffier.example.org/meet", cfg.publicURL())
	for _, bad := range []string{"greffier.example.org", "ftp://x", "https://x/?a=b", "https://x/#f"} {
		_, err := LoadConfig(nil, env(map[string]string{"GREFFIER_PUBLIC_URL": bad}))
		require.ErrorContains(t, err, "GREFFIER_PUBLIC_URL", bad)
	}
}

// TestSegmentLengthsAreConfigurable: the longest segment sent to the
// speech backend and how much a segment gathers across short pauses are
// settings; lengths the voice detector cannot keep are refused at start.
func TestSegmentLengthsAreConfigurable(t *testing.T) {
	t.Parallel()
	cfg, _, err := loadConfig("serve", nil, getenvOf(nil), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 30*time.Second, cfg.SegmentMax)
	require.Equal(t, 20*time.Second, cfg.SegmentMerge)

	cfg, _, err = loadConfig("serve", []string{"--segment-max", "25s"}, getenvOf(map[string]string{"GREFFIER_SEGMENT_MERGE": "-1s"}), io.Discard)
	require.NoError(t, err)
	require.Equal(t, 25*time.Second, cfg.SegmentMax)
	require.Equal(t, -time.Second, cfg.SegmentMerge, "no merging")

	for _, bad := range []map[string]string{
		{"GREFFIER_SEGMENT_MAX": "5s"},
		{"GREFFIER_SEGMENT_MAX": "15s", "GREFFIER_SEGMENT_MERGE": "20s"},
		{"GREFFIER_SEGMENT_MERGE": "0s"},
	} {
		_, _, err = loadConfig("serve", nil, getenvOf(bad), io.Discard)
		require.ErrorContains(t, err, "GREFFIER_SEGMENT_MAX", "%v", bad)
	}
}
