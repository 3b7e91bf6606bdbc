package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/usertext"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/recorder"
)

// Config is every setting of `greffier serve`, filled from an optional JSON
// file, then the environment (GREFFIER_*), then flags, each overriding the
// one before. Every field's default is in DefaultConfig.
type Config struct {
	// DataDir holds the SQLite database, local blobs, the spool and the
	// generated secrets. Default ./greffier-data.
	DataDir string `json:"data_dir" env:"DATA_DIR" flag:"data" usage:"data directory (database, recordings, spool, secrets)"`
	// HTTPAddr is the API's listen address. Default 127.0.0.1:8080.
	HTTPAddr string `json:"http_addr" env:"HTTP_ADDR" flag:"http" usage:"HTTP listen address"`
	// HTTPReadHeaderTimeout bounds reading a request's headers. Default 10s.
	HTTPReadHeaderTimeout time.Duration `json:"http_read_header_timeout" env:"HTTP_READ_HEADER_TIMEOUT" flag:"http-read-header-timeout" usage:"how long a client may take to send a request's headers"`
	// HTTPReadTimeout bounds reading a whole request, body included, so a
	// client trickling a body cannot hold a connection. Default 30s.
	HTTPReadTimeout time.Duration `json:"http_read_timeout" env:"HTTP_READ_TIMEOUT" flag:"http-read-timeout" usage:"how long a client may take to send a whole request"`
	// HTTPWriteTimeout is how long one write of a response may wait for
	// the client to take it. It is renewed at every write, so downloads
	// and caption streams last as long as they progress. Default 60s.
	HTTPWriteTimeout time.Duration `json:"http_write_timeout" env:"HTTP_WRITE_TIMEOUT" flag:"http-write-timeout" usage:"how long a response may wait for a client that reads nothing"`
	// HTTPIdleTimeout is how long a kept-alive connection may wait for its
	// next request. Default 2m.
	HTTPIdleTimeout time.Duration `json:"http_idle_timeout" env:"HTTP_IDLE_TIMEOUT" flag:"http-idle-timeout" usage:"how long an idle keep-alive connection stays open"`
	// MediaAddr is the one UDP address for all WebRTC media. Default 127.0.0.1:7882.
	MediaAddr string `json:"media_addr" env:"MEDIA_ADDR" flag:"media" usage:"UDP address for all WebRTC media"`
	// PublicIPs are announced to peers when Greffier sits behind a 1:1 NAT.
	PublicIPs []string `json:"public_ips" env:"PUBLIC_IPS" flag:"public-ip" usage:"comma-separated public IPs announced in ICE candidates"`
	// PostgresURL switches the database from SQLite to Postgres.
	PostgresURL string `json:"postgres_url" env:"POSTGRES_URL" flag:"postgres" usage:"Postgres URL (default: SQLite in the data directory)"`
	// S3* switch recordings from the local disk to S3.
	S3Endpoint  string `json:"s3_endpoint" env:"S3_ENDPOINT" flag:"s3-endpoint" usage:"S3 endpoint host:port (default: blobs on local disk)"`
	S3Bucket    string `json:"s3_bucket" env:"S3_BUCKET" flag:"s3-bucket" usage:"S3 bucket"`
	S3AccessKey string `json:"s3_access_key" env:"S3_ACCESS_KEY" flag:"s3-access-key" usage:"S3 access key"`
	S3SecretKey string `json:"s3_secret_key" env:"S3_SECRET_KEY" flag:"s3-secret-key" usage:"S3 secret key"`
	S3Region    string `json:"s3_region" env:"S3_REGION" flag:"s3-region" usage:"S3 region"`
	S3UseSSL    bool   `json:"s3_use_ssl" env:"S3_USE_SSL" flag:"s3-ssl" usage:"use https for S3"`
	// APIToken authenticates API callers. Empty: generated once into
	// <data>/api-token.
	APIToken string `json:"api_token" env:"API_TOKEN" flag:"api-token" usage:"API bearer token (default: generated into <data>/api-token)"`
	// JoinSecret signs join tokens. Empty: generated once into <data>/join-secret.
	JoinSecret string `json:"join_secret" env:"JOIN_SECRET" flag:"join-secret" usage:"secret signing join tokens, 32+ bytes (default: generated)"`
	// WebhookSecret signs webhook deliveries. Empty: generated once into
	// <data>/webhook-secret.
	WebhookSecret string `json:"webhook_secret" env:"WEBHOOK_SECRET" flag:"webhook-secret" usage:"secret signing webhooks (default: generated into <data>/webhook-secret)"`
	// WebhookAllowPrivate lets webhooks reach private, loopback,
	// link-local and other internal addresses. Default false: a webhook
	// URL is chosen by whoever holds the API token, and must not make the
	// server call what only it can reach (cloud metadata, admin ports).
	WebhookAllowPrivate bool `json:"webhook_allow_private" env:"WEBHOOK_ALLOW_PRIVATE" flag:"webhook-allow-private" usage:"let webhooks reach private, loopback and link-local addresses"`
	// IdleEndAfter ends a live meeting once nobody has been connected to
	// it for this long, as POST /end would (recordings stored, minutes
	// made); 0 never ends one by itself. Default 5m.
	IdleEndAfter time.Duration `json:"idle_end_after" env:"IDLE_END_AFTER" flag:"idle-end-after" usage:"end a live meeting nobody is connected to after this long (0: never)"`
	// Transcription backend (OpenAI-compatible). Default http://127.0.0.1:8000/v1.
	TranscribeURL   string `json:"transcribe_url" env:"TRANSCRIBE_URL" flag:"transcribe-url" usage:"OpenAI-compatible transcription base URL"`
	TranscribeKey   string `json:"transcribe_key" env:"TRANSCRIBE_KEY" flag:"transcribe-key" usage:"transcription API key"`
	TranscribeModel string `json:"transcribe_model" env:"TRANSCRIBE_MODEL" flag:"transcribe-model" usage:"transcription model"`
	TranscribePath  string `json:"transcribe_path" env:"TRANSCRIBE_PATH" flag:"transcribe-path" usage:"transcription path (whisper.cpp: /inference)"`
	// TranscribeSendWAV sends speech as 16 kHz WAV, decoded here, to a
	// server that cannot read Ogg Opus (whisper.cpp's /inference path
	// implies it); by default speech goes as Ogg Opus, undecoded.
	TranscribeSendWAV bool `json:"transcribe_send_wav" env:"TRANSCRIBE_SEND_WAV" flag:"transcribe-send-wav" usage:"send speech as WAV, for servers that read no Ogg Opus"`
	// TranscribeAttempts is no longer used and kept so that existing
	// configuration still loads: a segment's job calls the backend once
	// per attempt, so JobMaxAttempts bounds the calls for one segment.
	//
	// Deprecated: set JobMaxAttempts.
	TranscribeAttempts int `json:"transcribe_attempts" env:"TRANSCRIBE_ATTEMPTS" flag:"transcribe-attempts" usage:"ignored: a segment's backend calls are its job's attempts (job-max-attempts)"`
	// TranscribeBreakerCoolDown is how long a backend that failed
	// repeatedly is left alone before one probe. Default 30s.
	TranscribeBreakerCoolDown time.Duration `json:"transcribe_breaker_cool_down" env:"TRANSCRIBE_BREAKER_COOL_DOWN" flag:"transcribe-breaker-cool-down" usage:"pause before probing a failing backend again"`
	// JobSnoozeBudget is how long a segment waits for a down backend before
	// it is marked failed. Default 1h.
	JobSnoozeBudget time.Duration `json:"job_snooze_budget" env:"JOB_SNOOZE_BUDGET" flag:"job-snooze-budget" usage:"how long segments wait for a down backend"`
	// SegmentMax is the most audio one speech segment sent to the speech
	// backend holds; longer speech is cut at its quietest moment. Default
	// 30s, the window of Whisper-class models.
	SegmentMax time.Duration `json:"segment_max" env:"SEGMENT_MAX" flag:"segment-max" usage:"most audio in one segment sent to the speech backend"`
	// SegmentMerge: a speaker's stretches of speech less than 2 s apart
	// are merged into one segment until it holds this much. Default 20s;
	// at most SegmentMax; -1s merges nothing.
	SegmentMerge time.Duration `json:"segment_merge" env:"SEGMENT_MERGE" flag:"segment-merge" usage:"audio a segment gathers across short pauses (-1s: none)"`
	// DiarizeURL is a pyannote-style diarization server, to tell apart the
	// voices of participants who share a microphone. Empty: none.
	DiarizeURL string `json:"diarize_url" env:"DIARIZE_URL" flag:"diarize-url" usage:"pyannote-style diarization server (default: none)"`
	DiarizeKey string `json:"diarize_key" env:"DIARIZE_KEY" flag:"diarize-key" usage:"diarization API key"`
	// DiarizeWebhookURL is this server's public URL of /v1/hooks/diarize,
	// with DiarizeWebhookSecret; without it Greffier polls for results.
	DiarizeWebhookURL    string        `json:"diarize_webhook_url" env:"DIARIZE_WEBHOOK_URL" flag:"diarize-webhook-url" usage:"public URL of /v1/hooks/diarize (default: poll)"`
	DiarizeWebhookSecret string        `json:"diarize_webhook_secret" env:"DIARIZE_WEBHOOK_SECRET" flag:"diarize-webhook-secret" usage:"secret signing diarization webhooks"`
	DiarizePollInterval  time.Duration `json:"diarize_poll_interval" env:"DIARIZE_POLL_INTERVAL" flag:"diarize-poll-interval" usage:"how often to poll a diarization job (default 5s)"`
	// CaptionsURL is a Kyutai-style streaming speech server
	// (ws://host:port/api/asr-streaming) for live captions. Empty: none.
	CaptionsURL string `json:"captions_url" env:"CAPTIONS_URL" flag:"captions-url" usage:"streaming speech server for live captions (default: no captions)"`
	CaptionsKey string `json:"captions_key" env:"CAPTIONS_KEY" flag:"captions-key" usage:"streaming speech server API key"`
	// TranscribeConcurrency is how many segments are sent at once. Default 4.
	TranscribeConcurrency int `json:"transcribe_concurrency" env:"TRANSCRIBE_CONCURRENCY" flag:"transcribe-concurrency" usage:"segments transcribed at once"`
	// Summary backend (OpenAI-compatible chat completions). Empty URL: the
	// minutes are the transcript alone.
	SummaryURL              string `json:"summary_url" env:"SUMMARY_URL" flag:"summary-url" usage:"OpenAI-compatible chat base URL for summaries (default: no summary)"`
	SummaryKey              string `json:"summary_key" env:"SUMMARY_KEY" flag:"summary-key" usage:"chat API key"`
	SummaryModel            string `json:"summary_model" env:"SUMMARY_MODEL" flag:"summary-model" usage:"chat model for summaries"`
	SummaryMaxContextTokens int    `json:"summary_max_context_tokens" env:"SUMMARY_MAX_CONTEXT_TOKENS" flag:"summary-max-context-tokens" usage:"the chat model's context window, in tokens"`
	// Language is the default spoken language hint ("" = let the backend detect).
	Language string `json:"language" env:"LANGUAGE" flag:"language" usage:"default spoken language (ISO 639-1), empty to detect"`
	// JobPollInterval, when set, makes the pipeline poll for work this
	// often instead of River's default (SQLite has no notifications).
	JobPollInterval time.Duration `json:"job_poll_interval" env:"JOB_POLL_INTERVAL" flag:"job-poll-interval" usage:"how often the pipeline polls for jobs (default: River's)"`
	// JobMaxAttempts is how often a pipeline stage is tried before its
	// unit is recorded as failed. Default 8.
	JobMaxAttempts int `json:"job_max_attempts" env:"JOB_MAX_ATTEMPTS" flag:"job-max-attempts" usage:"attempts per pipeline stage before it is marked failed"`
	// JobRetryBase is the first wait before a retry; it doubles, jittered,
	// up to five minutes. Default 2s.
	JobRetryBase time.Duration `json:"job_retry_base" env:"JOB_RETRY_BASE" flag:"job-retry-base" usage:"first wait before a pipeline stage is retried"`
	// SpoolMinFree is the free space the spool's disk must have for a
	// publisher to be accepted and recorded (below it WHIP answers 507 and
	// the participant is listed as not recorded). Bytes, or with a unit:
	// 512MiB, 2GiB. 0 disables the check. Default 256MiB.
	SpoolMinFree ByteSize `json:"spool_min_free" env:"SPOOL_MIN_FREE" flag:"spool-min-free" usage:"free space the spool disk needs to record a publisher, e.g. 256MiB (0: no check)"`
	// MaxConcealedLoss is the longest stretch of a speaker's audio lost in
	// the network that the decoder may conceal; a longer one is stated in
	// the minutes as missing. Default 200ms.
	MaxConcealedLoss time.Duration `json:"max_concealed_loss" env:"MAX_CONCEALED_LOSS" flag:"max-concealed-loss" usage:"longest network loss concealed rather than stated missing in the minutes"`
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string `json:"log_level" env:"LOG_LEVEL" flag:"log-level" usage:"debug, info, warn or error"`
	// ShutdownTimeout bounds a graceful stop. Default 30s.
	ShutdownTimeout time.Duration `json:"shutdown_timeout" env:"SHUTDOWN_TIMEOUT" flag:"shutdown-timeout" usage:"how long a graceful stop may take"`
}

// DefaultIdleEndAfter is how long a live meeting may have nobody connected
// before it ends by itself: long enough for everyone to reconnect after a
// network change or a server restart.
const DefaultIdleEndAfter = 5 * time.Minute

// DefaultConfig is what zero configuration means.
func DefaultConfig() Config {
	return Config{
		DataDir:                   "greffier-data",
		HTTPAddr:                  "127.0.0.1:8080",
		MediaAddr:                 "127.0.0.1:7882",
		HTTPReadHeaderTimeout:     10 * time.Second,
		HTTPReadTimeout:           30 * time.Second,
		HTTPWriteTimeout:          time.Minute,
		HTTPIdleTimeout:           2 * time.Minute,
		TranscribeURL:             "http://127.0.0.1:8000/v1",
		TranscribeModel:           "whisper-1",
		TranscribeConcurrency:     4,
		JobMaxAttempts:            8,
		JobSnoozeBudget:           time.Hour,
		SegmentMax:                jobs.DefaultMaxSegment,
		SegmentMerge:              jobs.DefaultMergeSegment,
		TranscribeBreakerCoolDown: 30 * time.Second,
		JobRetryBase:              2 * time.Second,
		LogLevel:                  "info",
		ShutdownTimeout:           30 * time.Second,
		IdleEndAfter:              DefaultIdleEndAfter,
		SpoolMinFree:              recorder.DefaultMinFreeBytes,
		MaxConcealedLoss:          recorder.DefaultMaxConcealedLoss,
	}
}

// ByteSize is a size setting: a whole number of bytes, or one with a unit
// (KiB, MiB, GiB, TiB; KB, MB, GB, TB are taken as the same powers of two).
type ByteSize int64

// ParseByteSize reads "268435456", "256MiB", "1 GiB".
func ParseByteSize(s string) (ByteSize, error) {
	num, mult := strings.ToUpper(strings.TrimSpace(s)), int64(1)
	for i, u := range []string{"T", "G", "M", "K"} {
		if n, ok := cutUnit(num, u); ok {
			num, mult = n, int64(1)<<(10*(4-i))
			break
		}
	}
	num = strings.TrimSpace(strings.TrimSuffix(num, "B"))
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("want a size such as 256MiB or 1GiB, got %q", s)
	}
	return ByteSize(n * mult), nil
}

// cutUnit strips a unit prefix u with its IB, B or nothing after it.
func cutUnit(s, u string) (string, bool) {
	for _, suffix := range []string{u + "IB", u + "B", u} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			return strings.TrimSpace(n), true
		}
	}
	return s, false
}

// UnmarshalJSON takes a number of bytes or a string with a unit.
func (b *ByteSize) UnmarshalJSON(data []byte) error {
	var n int64
	if err := json.Unmarshal(data, &n); err == nil {
		*b = ByteSize(n)
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("want a size such as 256MiB or a number of bytes, got %s", data)
	}
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// LoadConfig reads the file named by --config or GREFFIER_CONFIG, then the
// environment, then the flags in args.
func LoadConfig(args []string, getenv func(string) string) (Config, error) {
	cfg := DefaultConfig()
	fs := flag.NewFlagSet("greffier serve", flag.ContinueOnError)
	configFile := fs.String("config", getenv("GREFFIER_CONFIG"), "JSON configuration file (env GREFFIER_CONFIG)")
	flagValues := map[string]*string{}
	v := reflect.ValueOf(&cfg).Elem()
	for i := range v.NumField() {
		f := v.Type().Field(i)
		name := f.Tag.Get("flag")
		flagValues[name] = fs.String(name, "", f.Tag.Get("usage")+" (env GREFFIER_"+f.Tag.Get("env")+")")
	}
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	if *configFile != "" {
		b, err := os.ReadFile(*configFile)
		if err != nil {
			return cfg, fmt.Errorf("read config file: %w", err)
		}
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cfg); err != nil {
			return cfg, fmt.Errorf("config file %s: %w", *configFile, err)
		}
	}
	for i := range v.NumField() {
		f := v.Type().Field(i)
		if s := getenv("GREFFIER_" + f.Tag.Get("env")); s != "" {
			if err := setField(v.Field(i), s); err != nil {
				return cfg, fmt.Errorf("GREFFIER_%s: %w", f.Tag.Get("env"), err)
			}
		}
	}
	var ferr error
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "config" {
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).Tag.Get("flag") == fl.Name {
				if err := setField(v.Field(i), *flagValues[fl.Name]); err != nil && ferr == nil {
					ferr = fmt.Errorf("--%s: %w", fl.Name, err)
				}
			}
		}
	})
	if ferr != nil {
		return cfg, ferr
	}
	return cfg, cfg.validate()
}

func setField(f reflect.Value, s string) error {
	switch f.Interface().(type) {
	case string:
		f.SetString(s)
	case bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return fmt.Errorf("want true or false, got %q", s)
		}
		f.SetBool(b)
	case int:
		n, err := strconv.Atoi(s)
		if err != nil {
			return fmt.Errorf("want a whole number, got %q", s)
		}
		f.SetInt(int64(n))
	case time.Duration:
		d, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("want a duration such as 30s, got %q", s)
		}
		f.SetInt(int64(d))
	case ByteSize:
		n, err := ParseByteSize(s)
		if err != nil {
			return err
		}
		f.SetInt(int64(n))
	case []string:
		var parts []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				parts = append(parts, p)
			}
		}
		f.Set(reflect.ValueOf(parts))
	default:
		return fmt.Errorf("unsupported setting type %s", f.Type())
	}
	return nil
}

func (c Config) validate() error {
	var errs []error
	if c.DataDir == "" {
		errs = append(errs, errors.New("data directory is empty: set --data or GREFFIER_DATA_DIR"))
	}
	s3 := []string{c.S3Endpoint, c.S3Bucket, c.S3AccessKey, c.S3SecretKey}
	set := 0
	for _, v := range s3 {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != len(s3) {
		errs = append(errs, errors.New("S3 needs all of GREFFIER_S3_ENDPOINT, GREFFIER_S3_BUCKET, GREFFIER_S3_ACCESS_KEY and GREFFIER_S3_SECRET_KEY"))
	}
	if c.JoinSecret != "" && len(c.JoinSecret) < 32 {
		errs = append(errs, errors.New("GREFFIER_JOIN_SECRET must be at least 32 characters"))
	}
	if c.TranscribeConcurrency < 1 {
		errs = append(errs, errors.New("GREFFIER_TRANSCRIBE_CONCURRENCY must be at least 1"))
	}
	if c.JobMaxAttempts < 1 || c.JobRetryBase <= 0 {
		errs = append(errs, errors.New("GREFFIER_JOB_MAX_ATTEMPTS must be at least 1 and GREFFIER_JOB_RETRY_BASE positive"))
	}
	if c.HTTPReadHeaderTimeout <= 0 || c.HTTPReadTimeout <= 0 || c.HTTPWriteTimeout <= 0 || c.HTTPIdleTimeout <= 0 {
		errs = append(errs, errors.New("GREFFIER_HTTP_READ_HEADER_TIMEOUT, GREFFIER_HTTP_READ_TIMEOUT, GREFFIER_HTTP_WRITE_TIMEOUT and GREFFIER_HTTP_IDLE_TIMEOUT must be positive durations: an unbounded one lets slow clients hold connections"))
	}
	if !usertext.ValidLanguage(c.Language) {
		errs = append(errs, fmt.Errorf("GREFFIER_LANGUAGE %q is not a language tag: use one such as fr, en or fr-FR, or leave it empty to detect", c.Language))
	}
	if c.IdleEndAfter < 0 {
		errs = append(errs, errors.New("GREFFIER_IDLE_END_AFTER must be a positive duration such as 5m, or 0 to never end meetings by themselves"))
	}
	if c.MaxConcealedLoss <= 0 {
		errs = append(errs, errors.New("GREFFIER_MAX_CONCEALED_LOSS must be a positive duration such as 200ms"))
	}
	if c.SpoolMinFree < 0 {
		errs = append(errs, errors.New("GREFFIER_SPOOL_MIN_FREE must not be negative: set a size such as 256MiB, or 0 for no check"))
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log level %q: use debug, info, warn or error", c.LogLevel))
	}
	if err := (jobs.Config{MaxSegment: c.SegmentMax, MergeSegment: c.SegmentMerge}).Validate(); err != nil || c.SegmentMax <= 0 || c.SegmentMerge == 0 {
		errs = append(errs, fmt.Errorf("GREFFIER_SEGMENT_MAX (%v) must be a duration of at least 10s and GREFFIER_SEGMENT_MERGE (%v) one up to it, or -1s", c.SegmentMax, c.SegmentMerge))
	}
	return errors.Join(errs...)
}

// secret returns the configured value, or the one generated into
// <data>/<name> on first start (created 0600), so a restart keeps tokens valid.
func secret(configured, dataDir, name string) (string, error) {
	if configured != "" {
		return configured, nil
	}
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", path, err)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("write %s: %w", path, err)
	}
	return s, nil
}
