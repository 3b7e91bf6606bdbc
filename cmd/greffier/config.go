package main

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/usertext"
	"github.com/greffier/greffier/jobs"
)

// Config is every setting of `greffier serve`, and the one table of them:
// each field's tags give its name, default and help, from which come its
// flag (--data-dir), its variable (GREFFIER_DATA_DIR), its key in the
// optional JSON file (data_dir), `serve -h`, `greffier config` and the
// table in docs/operations.md. Each source overrides the one before:
// default, file, environment, flags.
//
// Adding a setting is one field:
//
//	Name Type `setting:"kebab-name" default:"value" help:"what it does"`
//
// with secret:"true" for a setting to mask in `greffier config` and to read
// from a file as well (--name-file, GREFFIER_NAME_FILE), and alias:"old"
// for a former flag name still accepted. Types: string, bool, int,
// time.Duration, ByteSize, []string (comma-separated). Checks that span
// settings go in validate.
type Config struct {
	// DataDir holds the SQLite database, local blobs, the spool and the
	// generated secrets.
	DataDir string `setting:"data-dir" alias:"data" default:"greffier-data" help:"data directory (database, recordings, spool, secrets)"`
	// HTTPAddr is the API's listen address.
	HTTPAddr string `setting:"http-addr" alias:"http" default:"127.0.0.1:8080" help:"HTTP listen address of the API, the join page, /healthz and /readyz"`
	// PublicURL is the server's address as participants' browsers reach
	// it (https://greffier.example.org, or with a path prefix), used in
	// the join links meeting creation returns. Empty: http:// and the
	// HTTP listen address (127.0.0.1 for an unspecified host).
	PublicURL string `setting:"public-url" default:"" help:"public base URL of the join page, for join links (empty: from the HTTP address)"`
	// HTTPReadHeaderTimeout bounds reading a request's headers.
	HTTPReadHeaderTimeout time.Duration `setting:"http-read-header-timeout" default:"10s" help:"how long a client may take to send a request's headers"`
	// HTTPReadTimeout bounds reading a whole request, body included, so a
	// client trickling a body cannot hold a connection.
	HTTPReadTimeout time.Duration `setting:"http-read-timeout" default:"30s" help:"how long a client may take to send a whole request"`
	// HTTPWriteTimeout is how long one write of a response may wait for
	// the client to take it. It is renewed at every write, so downloads
	// and caption streams last as long as they progress.
	HTTPWriteTimeout time.Duration `setting:"http-write-timeout" default:"1m" help:"how long a response may wait for a client that reads nothing (renewed at every write)"`
	// HTTPIdleTimeout is how long a kept-alive connection may wait for its
	// next request.
	HTTPIdleTimeout time.Duration `setting:"http-idle-timeout" default:"2m" help:"how long an idle keep-alive connection stays open"`
	// MetricsAddr, when set, serves /metrics there without authentication
	// (for a scraper on a private network); empty serves it on the API
	// address to the API token only.
	MetricsAddr string `setting:"metrics-addr" default:"" help:"listen address for an unauthenticated /metrics (empty: /metrics on the API address, for admin keys)"`
	// Roles are what this node serves: api (HTTP API and web pages), sfu
	// (WHIP/WHEP, media, recorder, live path), worker (job workers). A
	// subset needs Postgres and S3, shared by every node.
	Roles []string `setting:"roles" default:"api,sfu,worker" help:"what this node serves: api, sfu, worker (a subset needs Postgres and S3)"`
	// NodeURL is this node's own HTTP base URL as clients reach it, where
	// other nodes redirect the WHIP and WHEP requests of the meetings
	// placed on it; when set, session and upload URLs are absolute on it.
	// Set it on every node when several share a database. Empty: the HTTP
	// listen address is announced, and URLs stay relative.
	NodeURL string `setting:"node-url" default:"" help:"this node's own base URL, where WHIP/WHEP of meetings placed on it are redirected; set it on every node when several share a database"`
	// NodeTimeout is how long a node may be silent before its running jobs
	// are taken up by others and its meetings' media placement is freed.
	NodeTimeout time.Duration `setting:"node-timeout" default:"10s" help:"silence after which a node counts as gone: its jobs and meetings go to other nodes"`
	// LostMediaAfter is how long an SFU node that stopped beating has to
	// come back with the audio it spooled before another node rebuilds
	// its tracks from their checkpoints and states the rest as lost.
	LostMediaAfter time.Duration `setting:"lost-media-after" default:"10m" help:"how long a lost SFU node may take to come back with its spooled audio before it is rebuilt from checkpoints and the rest declared lost"`
	// CheckpointInterval is how often a recording's new audio goes to
	// storage as a chunk: what losing a node or its disk costs at most.
	CheckpointInterval time.Duration `setting:"checkpoint-interval" default:"2m" help:"how often recordings are checkpointed to storage (what losing a node's disk costs at most)"`
	// MediaAddr is the one UDP address for all WebRTC media.
	MediaAddr string `setting:"media-addr" alias:"media" default:"127.0.0.1:7882" help:"UDP address for all WebRTC media"`
	// PublicIPs are announced to peers when Greffier sits behind a 1:1 NAT.
	PublicIPs []string `setting:"public-ips" alias:"public-ip" default:"" help:"comma-separated public IPs announced in ICE candidates"`
	// CORSOrigins are the web origins whose pages may call WHIP, WHEP and
	// /v1/ice-servers. None listed: any origin (join tokens travel in a
	// header, never a cookie).
	CORSOrigins []string `setting:"cors-origins" alias:"cors-origin" default:"" help:"comma-separated origins allowed to call WHIP/WHEP from a page (empty: any)"`
	// ICETCP also accepts ICE over TCP on the media port's number.
	ICETCP bool `setting:"ice-tcp" default:"true" help:"accept ICE over TCP on the media port's number"`
	// TURN runs the embedded TURN server.
	TURN bool `setting:"turn" default:"false" help:"run the embedded TURN server"`
	// TURNUDPAddr and TURNTCPAddr are its listen addresses ("-": off).
	TURNUDPAddr string `setting:"turn-udp-addr" alias:"turn-udp" default:":3478" help:"embedded TURN server's UDP address (-: off)"`
	TURNTCPAddr string `setting:"turn-tcp-addr" alias:"turn-tcp" default:":3478" help:"embedded TURN server's TCP address (-: off)"`
	// TURNTLSAddr, TURNCertFile and TURNKeyFile serve TURN over TLS
	// (turns:) when both files are set.
	TURNTLSAddr  string `setting:"turn-tls-addr" alias:"turn-tls" default:":5349" help:"embedded TURN server's TLS address (needs turn-cert-file and turn-key-file)"`
	TURNCertFile string `setting:"turn-cert-file" alias:"turn-cert" default:"" help:"PEM certificate for TURN over TLS"`
	TURNKeyFile  string `setting:"turn-key-file" alias:"turn-key" default:"" help:"PEM key for TURN over TLS"`
	// TURNRealm is its realm.
	TURNRealm string `setting:"turn-realm" default:"greffier" help:"embedded TURN server's realm"`
	// TURNRelayIP is the address relays are given out as. Empty: the
	// first public IP, else the media address's IP, else this host's first.
	TURNRelayIP string `setting:"turn-relay-ip" default:"" help:"address TURN relays are given out as (empty: a public IP, else the media address's)"`
	// TURNHost is the name or address in the turn: URLs given to clients.
	TURNHost string `setting:"turn-host" default:"" help:"host name or IP in the turn: URLs given to clients (empty: turn-relay-ip)"`
	// TURNRelayMinPort and TURNRelayMaxPort bound the relays' UDP ports.
	TURNRelayMinPort int `setting:"turn-relay-min-port" default:"0" help:"lowest UDP port for TURN relays (0: any)"`
	TURNRelayMaxPort int `setting:"turn-relay-max-port" default:"0" help:"highest UDP port for TURN relays (0: any)"`
	// TURNSecret signs TURN credentials. Empty: random at each start.
	TURNSecret string `setting:"turn-secret" secret:"true" default:"" help:"secret signing TURN credentials (empty: random per start)"`
	// ICEServers are external stun:/turn:/turns: URLs given to clients.
	ICEServers []string `setting:"ice-servers" alias:"ice-server" default:"" help:"comma-separated external stun:, turn:, turns: URLs given to clients"`
	// ICEServerSecret is the external TURN servers' shared secret (TURN
	// REST API, coturn's static-auth-secret).
	ICEServerSecret string `setting:"ice-server-secret" secret:"true" default:"" help:"shared secret of the external TURN servers (TURN REST API)"`
	// PostgresURL switches the database from SQLite to Postgres.
	PostgresURL string `setting:"postgres-url" alias:"postgres" secret:"true" default:"" help:"Postgres URL (empty: SQLite in the data directory)"`
	// S3* switch recordings from the local disk to S3.
	S3Endpoint  string `setting:"s3-endpoint" default:"" help:"S3 endpoint host:port (empty: blobs on local disk)"`
	S3Bucket    string `setting:"s3-bucket" default:"" help:"S3 bucket"`
	S3AccessKey string `setting:"s3-access-key" default:"" help:"S3 access key"`
	S3SecretKey string `setting:"s3-secret-key" secret:"true" default:"" help:"S3 secret key"`
	S3Region    string `setting:"s3-region" default:"" help:"S3 region"`
	S3UseSSL    bool   `setting:"s3-use-ssl" alias:"s3-ssl" default:"false" help:"use https for S3"`
	// S3SSEKMSKeyID asks the S3 service to encrypt objects with this KMS
	// key as well; refused at start by a service that does not apply it.
	S3SSEKMSKeyID string `setting:"s3-sse-kms-key-id" default:"" help:"KMS key id for S3 server-side encryption (SSE-KMS) of every object (empty: none)"`
	// APIToken authenticates API callers. Empty: generated once into
	// <data>/api-token.
	APIToken string `setting:"api-token" secret:"true" default:"" help:"API bearer token (empty: generated into <data-dir>/api-token)"`
	// JoinSecret signs join tokens. Empty: generated once into <data>/join-secret.
	JoinSecret string `setting:"join-secret" secret:"true" default:"" help:"secret signing join tokens, 32+ characters (empty: generated into <data-dir>/join-secret)"`
	// WebhookSecret signs webhook deliveries. Empty: generated once into
	// <data>/webhook-secret.
	WebhookSecret string `setting:"webhook-secret" secret:"true" default:"" help:"secret signing webhooks (empty: generated into <data-dir>/webhook-secret)"`
	// WebhookAllowPrivate lets webhooks reach private, loopback,
	// link-local and other internal addresses. Default false: a webhook
	// URL is chosen by whoever holds the API token, and must not make the
	// server call what only it can reach (cloud metadata, admin ports).
	WebhookAllowPrivate bool `setting:"webhook-allow-private" default:"false" help:"let webhooks reach private, loopback and link-local addresses"`
	// IdleEndAfter ends a live meeting once nobody has been connected to
	// it for this long, as POST /end would (recordings stored, minutes
	// made); 0 never ends one by itself.
	IdleEndAfter time.Duration `setting:"idle-end-after" default:"5m" help:"end a live meeting nobody is connected to after this long (0: never)"`
	// Transcription backend (OpenAI-compatible).
	TranscribeURL   string `setting:"transcribe-url" default:"http://127.0.0.1:8000/v1" help:"OpenAI-compatible transcription base URL"`
	TranscribeKey   string `setting:"transcribe-key" secret:"true" default:"" help:"transcription API key"`
	TranscribeModel string `setting:"transcribe-model" default:"whisper-1" help:"transcription model"`
	TranscribePath  string `setting:"transcribe-path" default:"" help:"transcription path (empty: /audio/transcriptions; whisper.cpp: /inference)"`
	// TranscribeSendWAV sends speech as 16 kHz WAV, decoded here, to a
	// server that cannot read Ogg Opus (whisper.cpp's /inference path
	// implies it); by default speech goes as Ogg Opus, undecoded.
	TranscribeSendWAV bool `setting:"transcribe-send-wav" default:"false" help:"send speech as WAV, for servers that read no Ogg Opus"`
	// TranscribeAttempts is no longer used and kept so that existing
	// configuration still loads: a segment's job calls the backend once
	// per attempt, so JobMaxAttempts bounds the calls for one segment.
	//
	// Deprecated: set JobMaxAttempts.
	TranscribeAttempts int `setting:"transcribe-attempts" default:"0" help:"ignored: a segment's backend calls are its job's attempts (job-max-attempts)"`
	// TranscribeBreakerCoolDown is how long a backend that failed
	// repeatedly is left alone before one probe.
	TranscribeBreakerCoolDown time.Duration `setting:"transcribe-breaker-cool-down" default:"30s" help:"pause before probing a failing backend again"`
	// JobSnoozeBudget is how long a segment waits for a down backend before
	// it is marked failed.
	JobSnoozeBudget time.Duration `setting:"job-snooze-budget" default:"1h" help:"how long segments wait for a down backend"`
	// SegmentMax is the most audio one speech segment sent to the speech
	// backend holds; longer speech is cut at its quietest moment: the
	// window of Whisper-class models.
	SegmentMax time.Duration `setting:"segment-max" default:"30s" help:"most audio in one segment sent to the speech backend (at least 10s)"`
	// SegmentMerge: a speaker's stretches of speech less than 2 s apart
	// are merged into one segment until it holds this much; at most
	// SegmentMax; -1s merges nothing.
	SegmentMerge time.Duration `setting:"segment-merge" default:"20s" help:"audio a segment gathers across short pauses, up to segment-max (-1s: none)"`
	// DiarizeURL is a pyannote-style diarization server, to tell apart the
	// voices of participants who share a microphone. Empty: none.
	DiarizeURL string `setting:"diarize-url" default:"" help:"pyannote-style diarization server (empty: none)"`
	DiarizeKey string `setting:"diarize-key" secret:"true" default:"" help:"diarization API key"`
	// DiarizeWebhookURL is this server's public URL of /v1/hooks/diarize,
	// with DiarizeWebhookSecret; without it Greffier polls for results.
	DiarizeWebhookURL    string        `setting:"diarize-webhook-url" default:"" help:"public URL of /v1/hooks/diarize (empty: poll)"`
	DiarizeWebhookSecret string        `setting:"diarize-webhook-secret" secret:"true" default:"" help:"secret signing diarization webhooks"`
	DiarizePollInterval  time.Duration `setting:"diarize-poll-interval" default:"5s" help:"how often to poll a diarization job"`
	// CaptionsURL is a Kyutai-style streaming speech server
	// (ws://host:port/api/asr-streaming) for live captions. Empty: none.
	CaptionsURL string `setting:"captions-url" default:"" help:"Kyutai-style streaming speech server for live captions (empty: no captions)"`
	CaptionsKey string `setting:"captions-key" secret:"true" default:"" help:"streaming speech server API key"`
	// TranscribeConcurrency is how many segments are sent at once.
	TranscribeConcurrency int `setting:"transcribe-concurrency" default:"4" help:"segments transcribed at once"`
	// Summary backend (OpenAI-compatible chat completions). Empty URL: the
	// minutes are the transcript alone.
	SummaryURL              string `setting:"summary-url" default:"" help:"OpenAI-compatible chat base URL for summaries (empty: no summary)"`
	SummaryKey              string `setting:"summary-key" secret:"true" default:"" help:"chat API key"`
	SummaryModel            string `setting:"summary-model" default:"" help:"chat model for summaries"`
	SummaryMaxContextTokens int    `setting:"summary-max-context-tokens" default:"0" help:"the chat model's context window, in tokens (0: 8192)"`
	// Language is the default spoken language hint ("" = let the backend detect).
	Language string `setting:"language" default:"" help:"default spoken language (ISO 639-1, e.g. fr), empty to detect"`
	// JobPollInterval, when set, makes the pipeline poll for work this
	// often instead of River's default (SQLite has no notifications).
	JobPollInterval time.Duration `setting:"job-poll-interval" default:"0" help:"how often the pipeline polls for jobs (0: River's default)"`
	// JobMaxAttempts is how often a pipeline stage is tried before its
	// unit is recorded as failed.
	JobMaxAttempts int `setting:"job-max-attempts" default:"8" help:"attempts per pipeline stage before it is marked failed"`
	// JobRetryBase is the first wait before a retry; it doubles, jittered,
	// up to five minutes.
	JobRetryBase time.Duration `setting:"job-retry-base" default:"2s" help:"first wait before a pipeline stage is retried"`
	// SpoolMinFree is the free space the spool's disk must have for a
	// publisher to be accepted and recorded (below it WHIP answers 507 and
	// the participant is listed as not recorded). 0 disables the check.
	SpoolMinFree ByteSize `setting:"spool-min-free" default:"256MiB" help:"free space the spool disk needs to record a publisher (0: no check)"`
	// MaxConcealedLoss is the longest stretch of a speaker's audio lost in
	// the network that the decoder may conceal; a longer one is stated in
	// the minutes as missing.
	MaxConcealedLoss time.Duration `setting:"max-concealed-loss" default:"200ms" help:"longest network loss concealed rather than stated missing in the minutes"`
	// RetainRecordings is how long after a meeting ended its recordings
	// (tracks, cut speech, archives, mix, speakers' files) are kept,
	// unless the meeting sets its own; 0 keeps them forever.
	RetainRecordings time.Duration `setting:"retain-recordings" default:"0" help:"keep recordings this long after a meeting ended, e.g. 2160h (0: forever)"`
	// RetainTranscripts is the same for transcripts and minutes.
	RetainTranscripts time.Duration `setting:"retain-transcripts" default:"0" help:"keep transcripts and minutes this long after a meeting ended (0: forever)"`
	// RetentionSweepInterval is how often expired data is looked for and
	// deleted.
	RetentionSweepInterval time.Duration `setting:"retention-sweep-interval" default:"1h" help:"how often data past its retention is deleted"`
	// ImportMaxSize bounds one imported recording's upload. Uploads wait
	// in <data>/imports.
	ImportMaxSize ByteSize `setting:"import-max-size" default:"2GiB" help:"largest recording an import may upload, e.g. 2GiB"`
	// ImportOpusEnc is the path of opus-tools' opusenc, which encodes
	// imported WAV and FLAC files to Opus. Empty: WAV and FLAC imports are
	// refused.
	ImportOpusEnc string `setting:"import-opusenc" default:"" help:"opusenc (opus-tools) to encode imported WAV and FLAC (empty: they are refused)"`
	// LiveKitURL is a LiveKit server whose rooms Greffier may record, as
	// a hidden participant that publishes nothing (ws(s):// or http(s)://).
	// Empty: no LiveKit rooms are recorded.
	LiveKitURL string `setting:"livekit-url" default:"" help:"LiveKit server whose rooms may be recorded, e.g. wss://livekit.example.org (empty: none)"`
	// LiveKitAPIKey and LiveKitAPISecret sign the recorder's join tokens
	// and check LiveKit's webhooks.
	LiveKitAPIKey    string `setting:"livekit-api-key" default:"" help:"LiveKit API key (joins rooms, checks webhooks)"`
	LiveKitAPISecret string `setting:"livekit-api-secret" secret:"true" default:"" help:"LiveKit API secret"`
	// LiveKitAutoRecord is the pattern of the rooms recorded as soon as
	// LiveKit's room_started webhook says they started: "*" every room, a
	// path.Match pattern such as "council-*", empty none (only the rooms
	// the API asks for).
	LiveKitAutoRecord string `setting:"livekit-auto-record" default:"" help:"rooms recorded when LiveKit says they started: * for all, a pattern such as council-*, empty for none"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `setting:"log-level" default:"info" help:"debug, info, warn or error"`
	// LogFormat is text (logfmt) or json.
	LogFormat string `setting:"log-format" default:"text" help:"text or json"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout time.Duration `setting:"shutdown-timeout" default:"30s" help:"how long a graceful stop may take"`
	// KEKFile holds the key-encryption key (32 random bytes, raw, hex or
	// base64) that wraps every meeting's data key. Empty: data at rest
	// is not encrypted.
	KEKFile string `setting:"kek-file" default:"" help:"file of the key-encryption key sealing recordings and minutes at rest: 32 random bytes, raw, hex or base64 (empty: not encrypted)"`
	// KEKPreviousFile is the key-encryption key being retired: at start,
	// every data key it wraps is re-wrapped with KEKFile's.
	KEKPreviousFile string `setting:"kek-previous-file" default:"" help:"previous key-encryption key: data keys it wraps are re-wrapped with kek-file's at start (rotation)"`
	// TLSCertFile and TLSKeyFile make serve answer HTTPS itself, re-reading
	// them when they change on disk.
	TLSCertFile string `setting:"tls-cert-file" default:"" help:"PEM certificate (chain) to serve HTTPS with, re-read when it changes (empty: plain HTTP)"`
	TLSKeyFile  string `setting:"tls-key-file" default:"" help:"PEM private key of tls-cert-file"`
}

// publicURL is PublicURL, or the address derived from the HTTP listen
// address when it is not set.
func (c Config) publicURL() string {
	if c.PublicURL != "" {
		return c.PublicURL
	}
	host, port, err := net.SplitHostPort(c.HTTPAddr)
	if err != nil {
		return "http://" + c.HTTPAddr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// nodeURL is NodeURL, or the address derived from the HTTP listen address.
func (c Config) nodeURL() string {
	if c.NodeURL != "" {
		return strings.TrimSuffix(c.NodeURL, "/")
	}
	return Config{HTTPAddr: c.HTTPAddr}.publicURL()
}

// has says whether this node serves role.
func (c Config) has(role string) bool { return slices.Contains(c.Roles, role) }

// allRoles are the roles of a node that serves everything.
var allRoles = []string{store.RoleAPI, store.RoleSFU, store.RoleWorker}

func (c Config) validateRoles() []error {
	var errs []error
	if len(c.Roles) == 0 {
		errs = append(errs, badSetting("roles", "no role: set one or more of %s", strings.Join(allRoles, ",")))
	}
	for _, r := range c.Roles {
		if !slices.Contains(allRoles, r) {
			errs = append(errs, badSetting("roles", "unknown role %q: the roles are %s", r, strings.Join(allRoles, ",")))
		}
	}
	subset := false
	for _, r := range allRoles {
		subset = subset || !c.has(r)
	}
	if subset && len(errs) == 0 {
		if c.PostgresURL == "" {
			errs = append(errs, badSetting("roles", "%q is a subset of the roles, which only makes sense with several nodes on one Postgres: "+
				"set postgres-url and S3 on every node, or run every role (%s)", strings.Join(c.Roles, ","), strings.Join(allRoles, ",")))
		} else if c.S3Endpoint == "" {
			errs = append(errs, badSetting("roles", "%q is a subset of the roles: the nodes share recordings through S3; set s3-endpoint "+
				"(and its bucket and keys) on every node", strings.Join(c.Roles, ",")))
		}
	}
	if c.NodeURL != "" {
		if u, err := url.Parse(c.NodeURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" {
			errs = append(errs, badSetting("node-url", "%q must be an absolute http(s) URL without query or fragment, such as https://greffier.example.org/nodes/1 "+
				"(a path the load balancer strips) or https://node-1.greffier.example.org", c.NodeURL))
		}
	}
	if c.CheckpointInterval < time.Second {
		errs = append(errs, badSetting("checkpoint-interval", "must be at least 1s"))
	}
	if c.NodeTimeout < time.Second {
		errs = append(errs, badSetting("node-timeout", "must be at least 1s (nodes beat every fifth of it)"))
	}
	return errs
}

// DefaultIdleEndAfter is how long a live meeting may have nobody connected
// before it ends by itself: long enough for everyone to reconnect after a
// network change or a server restart.
const DefaultIdleEndAfter = 5 * time.Minute

// DefaultConfig is what zero configuration means: every setting's default
// tag.
func DefaultConfig() Config {
	var cfg Config
	v := reflect.ValueOf(&cfg).Elem()
	for _, s := range settings() {
		if err := setField(v.Field(s.index), s.Default); err != nil {
			panic(fmt.Sprintf("setting %s: bad default %q: %v", s.Name, s.Default, err)) // a programming error, caught by every test
		}
	}
	return cfg
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
	bad := func(name, format string, args ...any) { errs = append(errs, badSetting(name, format, args...)) }
	if c.DataDir == "" {
		bad("data-dir", "the data directory is empty: set one, such as ./greffier-data")
	}
	s3 := map[string]string{"s3-endpoint": c.S3Endpoint, "s3-bucket": c.S3Bucket, "s3-access-key": c.S3AccessKey, "s3-secret-key": c.S3SecretKey}
	set := 0
	for _, v := range s3 {
		if v != "" {
			set++
		}
	}
	if set != 0 && set != len(s3) {
		for _, name := range []string{"s3-endpoint", "s3-bucket", "s3-access-key", "s3-secret-key"} {
			if s3[name] == "" {
				bad(name, "S3 needs an endpoint, a bucket, an access key and a secret key; this one is missing")
			}
		}
	}
	if c.PublicURL != "" {
		if u, err := url.Parse(c.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" ||
			u.RawQuery != "" || u.Fragment != "" {
			bad("public-url", "%q must be an absolute http(s) URL without query or fragment, such as https://greffier.example.org", c.PublicURL)
		}
	}
	errs = append(errs, c.validateRoles()...)
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		bad("tls-cert-file", "HTTPS needs both a certificate file and a key file (tls-key-file); set both or neither")
	}
	if c.KEKPreviousFile != "" && c.KEKFile == "" {
		bad("kek-previous-file", "rotation re-wraps data keys with the new key: set kek-file to it too")
	}
	if c.JoinSecret != "" && len(c.JoinSecret) < 32 {
		bad("join-secret", "must be at least 32 characters (or empty, to have one generated)")
	}
	if c.TranscribeConcurrency < 1 {
		bad("transcribe-concurrency", "must be at least 1")
	}
	if c.JobMaxAttempts < 1 {
		bad("job-max-attempts", "must be at least 1")
	}
	if c.JobRetryBase <= 0 {
		bad("job-retry-base", "must be a positive duration such as 2s")
	}
	for name, d := range map[string]time.Duration{"http-read-header-timeout": c.HTTPReadHeaderTimeout,
		"http-read-timeout": c.HTTPReadTimeout, "http-write-timeout": c.HTTPWriteTimeout, "http-idle-timeout": c.HTTPIdleTimeout} {
		if d <= 0 {
			bad(name, "must be a positive duration: an unbounded one lets slow clients hold connections")
		}
	}
	if !usertext.ValidLanguage(c.Language) {
		bad("language", "%q is not a language tag: use one such as fr, en or fr-FR, or leave it empty to detect", c.Language)
	}
	if c.IdleEndAfter < 0 {
		bad("idle-end-after", "must be a positive duration such as 5m, or 0 to never end meetings by themselves")
	}
	if c.MaxConcealedLoss <= 0 {
		bad("max-concealed-loss", "must be a positive duration such as 200ms")
	}
	if c.SpoolMinFree < 0 {
		bad("spool-min-free", "must not be negative: set a size such as 256MiB, or 0 for no check")
	}
	for name, raw := range map[string]string{"transcribe-url": c.TranscribeURL, "summary-url": c.SummaryURL,
		"diarize-url": c.DiarizeURL, "captions-url": c.CaptionsURL, "diarize-webhook-url": c.DiarizeWebhookURL} {
		if raw == "" {
			continue
		}
		if u, err := url.Parse(raw); err != nil || u.Host == "" || u.Scheme == "" {
			bad(name, "%q is not an absolute URL such as http://127.0.0.1:8000/v1", redactURL(raw))
		}
	}
	if c.LiveKitURL != "" {
		if u, err := url.Parse(c.LiveKitURL); err != nil || u.Host == "" || !slices.Contains([]string{"ws", "wss", "http", "https"}, u.Scheme) {
			bad("livekit-url", "%q is not a LiveKit URL such as wss://livekit.example.org", redactURL(c.LiveKitURL))
		}
		if c.LiveKitAPIKey == "" {
			bad("livekit-api-key", "LiveKit needs the API key its server is configured with")
		}
		if c.LiveKitAPISecret == "" {
			bad("livekit-api-secret", "LiveKit needs the API secret its server is configured with")
		}
	}
	if _, err := path.Match(c.LiveKitAutoRecord, ""); err != nil {
		bad("livekit-auto-record", "%q is not a room pattern: use * for every room, a pattern such as council-*, or leave it empty", c.LiveKitAutoRecord)
	} else if c.LiveKitAutoRecord != "" && c.LiveKitURL == "" {
		bad("livekit-auto-record", "records LiveKit rooms: set livekit-url (and its API key and secret) too")
	}
	if c.RetainRecordings < 0 {
		bad("retain-recordings", "must be a duration such as 2160h, or 0 to keep forever")
	}
	if c.RetainTranscripts < 0 {
		bad("retain-transcripts", "must be a duration such as 2160h, or 0 to keep forever")
	}
	if c.ImportOpusEnc != "" {
		if _, err := exec.LookPath(c.ImportOpusEnc); err != nil {
			bad("import-opusenc", "%q: %v: install opus-tools or leave it empty to refuse WAV and FLAC imports", c.ImportOpusEnc, err)
		}
	}
	if c.ImportMaxSize <= 0 {
		bad("import-max-size", "must be a positive size such as 2GiB")
	}
	if c.RetentionSweepInterval <= 0 {
		bad("retention-sweep-interval", "must be a positive duration such as 1h")
	}
	if c.TURNRelayMinPort < 0 || c.TURNRelayMaxPort > 65535 || c.TURNRelayMinPort > c.TURNRelayMaxPort && c.TURNRelayMaxPort != 0 {
		bad("turn-relay-min-port", "and turn-relay-max-port must bound a range of UDP ports (0: any)")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log-level", "%q: use debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		bad("log-format", "%q: use text or json", c.LogFormat)
	}
	if err := (jobs.Config{MaxSegment: c.SegmentMax, MergeSegment: c.SegmentMerge}).Validate(); err != nil || c.SegmentMax <= 0 || c.SegmentMerge == 0 {
		bad("segment-max", "(%v) must be a duration of at least 10s, and segment-merge (%v) one up to it, or -1s", c.SegmentMax, c.SegmentMerge)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// secret returns the configured value, or the one generated into
// <data>/<name> on first start (created 0600), so a restart keeps tokens
// valid. generated says it was made now.
func secret(configured, dataDir, name string) (value string, generated bool, err error) {
	if configured != "" {
		return configured, false, nil
	}
	path := filepath.Join(dataDir, name)
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); s != "" {
			return s, false, nil
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return "", false, fmt.Errorf("read %s: %w", path, err)
	}
	var b [32]byte
	_, _ = rand.Read(b[:])
	s := hex.EncodeToString(b[:])
	if err := os.MkdirAll(dataDir, 0o750); err != nil {
		return "", false, fmt.Errorf("create data directory: %w", err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return s, true, nil
}
