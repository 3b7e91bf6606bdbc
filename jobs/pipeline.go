// Package jobs is the only package that knows the pipeline's order. It runs
// the stages as River jobs, each idempotent and enqueued in the same
// transaction as the state change that calls for it:
//
//	track stored ─▶ detect_speech ─▶ transcribe_segment (one per speech segment)
//	meeting ended + every unit final ─▶ assemble_minutes ─▶ meeting ready
//	meeting ended + every track final ─▶ archive_meeting (recordings only)
//
// Job arguments carry keys, never audio: each stage reads its input from
// blob storage and the store.
package jobs

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/riverqueue/river/riverdriver/riversqlite"
	"github.com/riverqueue/river/rivermigrate"
	"github.com/riverqueue/river/rivertype"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/backend"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/egress"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/upload"
	"github.com/greffier/greffier/summarize"
	"github.com/greffier/greffier/transcribe"
)

// Transcriber is what the pipeline needs of a speech backend.
type Transcriber interface {
	Transcribe(ctx context.Context, req transcribe.Request) (transcribe.Result, error)
}

// Summarizer writes a summary of a transcript.
type Summarizer interface {
	Summarize(ctx context.Context, tr summarize.Transcript) (*summarize.Summary, error)
}

// Deps are the parts the pipeline drives.
type Deps struct {
	Store       *store.Store // required
	Blobs       blob.Store   // required
	Transcriber Transcriber  // required
	// Summarizer is optional: without one, minutes are the transcript alone.
	Summarizer Summarizer
	// Voices, optional, tells apart the voices on shared-microphone
	// tracks; without it their speech stays with the participant.
	Voices Voices
	// TranscriberName names the speech backend where the meeting's
	// progress shows segments waiting for it (default
	// DefaultTranscriberName).
	TranscriberName string
	Logger          *slog.Logger // required
	// RiverLogger is River's own logger (its migrations, producers and
	// elector), so that its routine chatter can be logged at another
	// level than the pipeline's events. Default Logger.
	RiverLogger *slog.Logger
	// Announced, optional, is told each event of a meeting's pipeline
	// once its transaction committed (minutes ready or incomplete,
	// meeting failed, archive ready), as the webhook would: for metrics.
	Announced func(m store.Meeting, event string)
	// Uploads, optional, holds the uploaded files that imports read;
	// without it nothing is imported.
	Uploads *upload.Store
}

// Defaults for Config.
const (
	DefaultWorkers           = 4
	DefaultTranscribeWorkers = 4
	DefaultMaxAttempts       = 8
	DefaultRetryBase         = 2 * time.Second
	DefaultRetryMax          = 5 * time.Minute
	DefaultSnoozeBudget      = time.Hour
	// DefaultRetentionSweepInterval is Config.RetentionSweepInterval's default.
	DefaultRetentionSweepInterval = time.Hour
	// DefaultMaxSegment is the window of Whisper-class models.
	DefaultMaxSegment = 30 * time.Second
	// DefaultMergeSegment leaves a third of the window for a segment's
	// last phrase.
	DefaultMergeSegment = 20 * time.Second
)

// mergePause is the longest pause across which a speaker's stretches of
// speech are merged into one segment: a pause inside a turn, not between
// turns.
const mergePause = 2 * time.Second

// DefaultTranscriberName is Deps.TranscriberName's default.
const DefaultTranscriberName = "transcription backend"

// Config tunes the pipeline. Zero values take the defaults.
type Config struct {
	// Workers is how many non-transcription jobs run at once (default 4).
	Workers int
	// TranscribeWorkers is how many segments are sent to the backend at
	// once (default 4): match it to the backend's concurrency.
	TranscribeWorkers int
	// MaxAttempts is how often a stage is tried before its unit is marked
	// failed (default 8).
	MaxAttempts int
	// RetryBase and RetryMax bound the jittered exponential backoff
	// between attempts (defaults 2 s and 5 min).
	RetryBase, RetryMax time.Duration
	// PollInterval, when set, makes River poll for jobs at this interval
	// (tests use it to react fast on SQLite).
	PollInterval time.Duration
	// WebhookSecret signs webhook deliveries; without it none are sent.
	WebhookSecret []byte
	// WebhookAllowPrivate lets webhooks reach private, loopback and
	// link-local addresses (default false: such a delivery is refused as
	// it connects, whatever the name resolved to when the URL was set).
	WebhookAllowPrivate bool
	// TempDir holds archive files while they are written (default the
	// system's temporary directory).
	TempDir string
	// SnoozeBudget is how long a segment may wait for a backend that is
	// down or rate-limiting before it is marked failed (default 1 h).
	SnoozeBudget time.Duration
	// MaxSegment is the most audio one speech segment sent to the
	// backend holds (default 30 s, the window of Whisper-class models):
	// longer speech is cut at its quietest moment before that.
	MaxSegment time.Duration
	// MergeSegment is how much audio a segment gathers before a pause
	// ends it: a speaker's stretches of speech less than 2 s apart are
	// merged into one segment until it holds this much (default 20 s), so
	// the backend hears whole phrases with what led to them. At most
	// MaxSegment; negative: every pause of 400 ms ends a segment.
	MergeSegment time.Duration
	// NodeTimeout is how long a process may go without a heartbeat before
	// the jobs it was running are given to others (Postgres; default
	// 10 s). It beats every fifth of it. On embedded SQLite a restart takes
	// up its previous life's jobs at once.
	NodeTimeout time.Duration
	// RetainRecordings and RetainTranscripts are how long after a meeting
	// ended its recordings and its transcripts are kept, unless the
	// meeting sets its own; 0 (the default) keeps them forever.
	RetainRecordings, RetainTranscripts time.Duration
	// RetentionSweepInterval is how often data past its retention is
	// looked for and deleted (default 1 h).
	RetentionSweepInterval time.Duration
	// SpoolDirs, optional, names the directories on this node that may
	// hold a meeting's spool leftovers, removed when it is deleted.
	SpoolDirs func(meetingID string) []string
	// SharedUploads copies an import's uploaded files to blob storage
	// before its job is enqueued, so that any node's worker runs it: set
	// when several nodes share the database (the uploads are on the disk
	// of the node that received them).
	SharedUploads bool
	// InsertOnly makes a process that enqueues jobs but runs none: a
	// node without the worker role. Its heartbeat still names it.
	InsertOnly bool
	// Node, optional, describes this process in its heartbeats (roles,
	// URL, media address, load); its ID is ignored, NodeID's is used.
	Node func() store.Node
	// OpusEncoder, optional, is the path of opus-tools' opusenc, which
	// encodes imported WAV and FLAC files to Opus (Greffier has no encoder
	// of its own); without it they are refused.
	OpusEncoder string
}

// WithDefaults returns a copy of c with every zero field set.
func (c Config) WithDefaults() Config {
	if c.Workers <= 0 {
		c.Workers = DefaultWorkers
	}
	if c.TranscribeWorkers <= 0 {
		c.TranscribeWorkers = DefaultTranscribeWorkers
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.RetryBase <= 0 {
		c.RetryBase = DefaultRetryBase
	}
	if c.RetryMax <= 0 {
		c.RetryMax = DefaultRetryMax
	}
	if c.SnoozeBudget <= 0 {
		c.SnoozeBudget = DefaultSnoozeBudget
	}
	if c.NodeTimeout <= 0 {
		c.NodeTimeout = DefaultNodeTimeout
	}
	if c.RetentionSweepInterval <= 0 {
		c.RetentionSweepInterval = DefaultRetentionSweepInterval
	}
	if c.MaxSegment <= 0 {
		c.MaxSegment = DefaultMaxSegment
	}
	if c.MergeSegment == 0 {
		c.MergeSegment = min(DefaultMergeSegment, c.MaxSegment)
	}
	return c
}

// VoiceActivity is how both the live and the batch path cut a track into
// speech segments; they must agree for a re-run or a fallback to find the
// same segments.
func (c Config) VoiceActivity() diarize.VoiceDetectorConfig {
	c = c.WithDefaults()
	v := diarize.VoiceDetectorConfig{MaxSegment: c.MaxSegment}
	if c.MergeSegment > 0 {
		v.MinSegment, v.JoinPause = c.MergeSegment, mergePause
	}
	return v
}

// Validate says what is wrong with c's settings, naming them.
func (c Config) Validate() error {
	if err := c.VoiceActivity().Validate(); err != nil {
		return fmt.Errorf("MaxSegment (%v) and MergeSegment (%v): %w", c.MaxSegment, c.MergeSegment, err)
	}
	return nil
}

const transcribeQueue = "transcribe"

// Pipeline runs the stages.
type Pipeline struct {
	announced func(store.Meeting, string)
	cfg       Config
	store     *store.Store
	blobs     blob.Store
	tr        Transcriber
	sum       Summarizer
	voices    Voices
	uploads   *upload.Store
	http      *http.Client
	log       *slog.Logger
	client    *river.Client[*sql.Tx]
	driver    riverdriver.Driver[*sql.Tx]
	// nodeID names this process in the nodes table and in River's
	// attempted_by.
	nodeID string
	// trName names the speech backend to hosts.
	trName string

	stopBeats context.CancelFunc
	beatsDone sync.WaitGroup

	// settleMu makes sweeps of discarded jobs (discarded.go) take turns;
	// settled is when the last one began.
	settleMu sync.Mutex
	settled  time.Time

	// live holds one queue per live worker; each track's segments go
	// through one of them (lanes counts the tracks given one), so they
	// are stored in the order they were cut.
	live     []chan liveSpeech
	lanes    atomic.Uint64
	stopLive context.CancelFunc
	liveDone sync.WaitGroup
}

// embeddedSQLite is River's SQLite driver for a database only this process
// opens. riversqlite emulates LISTEN/NOTIFY with a table that its listener
// polls many times a second, a cost paid with nothing to do that over an
// hour-long meeting outweighs all the pipeline's work for it (measured in
// docs/benchmarks.md, "River polling SQLite"). No other process can insert
// jobs into an embedded database, so there is no one to listen to: without
// a listener, River hands each insert straight to this process's
// producers, and polls only as its fetch interval says.
type embeddedSQLite struct{ *riversqlite.Driver }

func (embeddedSQLite) SupportsListener() bool     { return false }
func (embeddedSQLite) SupportsListenNotify() bool { return false }

// New migrates River's tables in st and builds the pipeline. Start runs it.
func New(ctx context.Context, cfg Config, d Deps) (*Pipeline, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("jobs: %w", err)
	}
	if d.Store == nil || d.Blobs == nil || d.Transcriber == nil || d.Logger == nil {
		return nil, errors.New("jobs: Store, Blobs, Transcriber and Logger are required")
	}
	st, logger := d.Store, d.Logger
	riverLogger := d.RiverLogger
	if riverLogger == nil {
		riverLogger = logger
	}
	var driver riverdriver.Driver[*sql.Tx]
	switch st.Dialect() {
	case store.Postgres:
		driver = riverdatabasesql.NewWithPgxListener(st.DB(), st.PgxPool())
	default:
		driver = embeddedSQLite{riversqlite.New(st.DB())}
	}
	migrator, err := rivermigrate.New(driver, &rivermigrate.Config{Logger: riverLogger})
	if err != nil {
		return nil, fmt.Errorf("river migrator: %w", err)
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return nil, fmt.Errorf("migrate river tables: %w", err)
	}

	p := &Pipeline{announced: d.Announced, cfg: cfg, store: st, blobs: d.Blobs, tr: d.Transcriber, sum: d.Summarizer, voices: d.Voices, uploads: d.Uploads, log: logger,
		driver: driver, nodeID: store.NewID("node"), trName: d.TranscriberName,
		http: egress.Guard{AllowPrivate: cfg.WebhookAllowPrivate}.Client(20 * time.Second),
		live: make([]chan liveSpeech, liveWorkers)}
	for i := range p.live {
		p.live[i] = make(chan liveSpeech, liveQueue)
	}
	if p.trName == "" {
		p.trName = DefaultTranscriberName
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &detectWorker{p: p})
	river.AddWorker(workers, &transcribeWorker{p: p})
	river.AddWorker(workers, &assembleWorker{p: p})
	river.AddWorker(workers, &archiveWorker{p: p})
	river.AddWorker(workers, &voicesWorker{p: p})
	river.AddWorker(workers, &webhookWorker{p: p})
	river.AddWorker(workers, &deleteWorker{p: p})
	river.AddWorker(workers, &sweepWorker{p: p})
	river.AddWorker(workers, &importWorker{p: p})
	rcfg := &river.Config{
		ID:          p.nodeID,
		Logger:      riverLogger,
		Workers:     workers,
		MaxAttempts: cfg.MaxAttempts,
		RetryPolicy: retryPolicy{backend.Backoff{Base: cfg.RetryBase, Max: cfg.RetryMax}},
		Queues: map[string]river.QueueConfig{
			river.QueueDefault: {MaxWorkers: cfg.Workers},
			transcribeQueue:    {MaxWorkers: cfg.TranscribeWorkers},
		},
		// The jobs of a process that died are rescued by node heartbeats
		// (nodes.go). River's rescuer looks at jobs running longer than
		// this, and rescues each only once its worker's own timeout
		// (set from the audio's length) has passed: the backstop for a
		// live process's job that outlived it.
		RescueStuckJobsAfter: time.Minute,
		FetchPollInterval:    cfg.PollInterval,
		FetchCooldown:        min(cfg.PollInterval, 100*time.Millisecond),
		PeriodicJobs: []*river.PeriodicJob{river.NewPeriodicJob(river.PeriodicInterval(cfg.RetentionSweepInterval),
			func() (river.JobArgs, *river.InsertOpts) { return RetentionSweepArgs{}, nil },
			&river.PeriodicJobOpts{RunOnStart: true})},
	}
	if cfg.PollInterval <= 0 {
		rcfg.FetchPollInterval, rcfg.FetchCooldown = 0, 0
	}
	client, err := river.NewClient(driver, rcfg)
	if err != nil {
		return nil, fmt.Errorf("river client: %w", err)
	}
	p.client = client
	return p, nil
}

// Start takes up the jobs of processes that died, and begins working jobs.
// It does not block.
func (p *Pipeline) Start(ctx context.Context) error {
	embedded := p.store.Dialect() == store.SQLite
	if !embedded {
		if err := p.store.Heartbeat(ctx, p.node()); err != nil {
			return err
		}
	}
	if _, err := p.rescueOrphans(ctx); err != nil {
		return fmt.Errorf("take up the jobs of stopped processes: %w", err)
	}
	if _, err := p.settleDiscarded(ctx); err != nil {
		return fmt.Errorf("record the units of jobs that will not run again: %w", err)
	}
	if !p.cfg.InsertOnly {
		if err := p.client.Start(ctx); err != nil {
			return fmt.Errorf("start job workers: %w", err)
		}
	}
	bctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopBeats = cancel
	p.beatsDone.Add(1)
	go func() {
		defer p.beatsDone.Done()
		p.runHeartbeats(bctx)
	}()
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p.stopLive = cancel
	for _, lane := range p.live {
		p.liveDone.Add(1)
		go func() {
			defer p.liveDone.Done()
			p.runLive(lctx, lane)
		}()
	}
	return nil
}

// liveWorkers store live speech segments: blob and database writes, a few
// milliseconds each, so two keep up with a large meeting. Each has its
// own queue and tracks, so a track's segments are stored one after the
// other, in order: a segment stored before the one cut before it would
// find no earlier segment of its speaker waiting, be transcribed first,
// without its speaker's previous words, and a re-run would prompt it
// differently.
const liveWorkers = 2

// Stop lets running jobs finish (until ctx ends) and stops.
func (p *Pipeline) Stop(ctx context.Context) error {
	if p.stopLive != nil {
		p.stopLive()
		p.liveDone.Wait()
	}
	if p.stopBeats != nil {
		p.stopBeats()
		p.beatsDone.Wait()
	}
	if !p.cfg.InsertOnly {
		if err := p.client.Stop(ctx); err != nil && !errors.Is(err, context.Canceled) {
			return fmt.Errorf("stop job workers: %w", err)
		}
	}
	// Gone: any job left running is for the other nodes to take up now,
	// not after NodeTimeout, and its meetings' placement is free.
	return p.store.ForgetNodes(context.WithoutCancel(ctx), p.nodeID, time.Time{})
}

// NodeID names this process in River's attempted_by and the nodes table.
func (p *Pipeline) NodeID() string { return p.nodeID }

// Client exposes the River client (for River UI and tests).
func (p *Pipeline) Client() *river.Client[*sql.Tx] { return p.client }

// EndMeeting marks the meeting ended and, in the same transaction, enqueues
// speech detection for every stored track not yet processed (and assembly
// right away when there is nothing left to wait for).
func (p *Pipeline) EndMeeting(ctx context.Context, meetingID string) (store.Meeting, error) {
	var m store.Meeting
	err := p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		cur, err := q.Meeting(ctx, meetingID)
		if err != nil {
			return err
		}
		if cur.State == store.MeetingImporting {
			// Its import job ends it once every file is stored.
			return &store.TransitionError{MeetingID: meetingID, From: cur.State, To: store.MeetingEnded}
		}
		if m, err = q.Transition(ctx, meetingID, store.MeetingEnded, ""); err != nil {
			return err
		}
		if err := p.detectAll(ctx, tx, q, m); err != nil {
			return err
		}
		return p.maybeArchive(ctx, tx, q, meetingID)
	})
	if err == nil {
		p.log.Info("meeting ended", "meeting", meetingID, "title", m.Title)
	}
	return m, err
}

// Rerun runs the whole pipeline again over an ended meeting's stored
// recordings (say, with a better model, or after renaming someone): a new
// run whose minutes become a new version; older versions stay readable.
// A meeting still ended (its pipeline running, or stuck) can be re-run
// too, whatever its jobs are doing: that is the host's way out, since the
// new run number makes every job of the old run a no-op.
func (p *Pipeline) Rerun(ctx context.Context, meetingID string) (store.Meeting, error) {
	var m store.Meeting
	err := p.store.InTx(ctx, func(tx *sql.Tx, q store.Queries) error {
		cur, err := q.Meeting(ctx, meetingID)
		if err != nil {
			return err
		}
		if r, err := q.Retention(ctx, meetingID); err != nil {
			return err
		} else if !r.RecordingsExpiredAt.IsZero() {
			return fmt.Errorf("re-run %s: its recordings were %w", meetingID, store.ErrExpired)
		}
		if ip, err := q.ImportProgress(ctx, meetingID); err == nil && ip.FilesDone < ip.Files {
			// A failed import stored no track: there is nothing to run.
			return &store.TransitionError{MeetingID: meetingID, From: cur.State, To: store.MeetingEnded}
		} else if err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
		switch {
		case cur.State == store.MeetingEnded:
			m = cur
		case cur.State.Finished():
			if m, err = q.Transition(ctx, meetingID, store.MeetingEnded, ""); err != nil {
				return err
			}
		default:
			return &store.TransitionError{MeetingID: meetingID, From: cur.State, To: store.MeetingEnded}
		}
		if m.Run, err = q.StartRerun(ctx, meetingID); err != nil {
			return err
		}
		if err := p.cancelEarlierRuns(ctx, tx, m); err != nil {
			return err
		}
		if err := p.detectAll(ctx, tx, q, m); err != nil {
			return err
		}
		// The files stay; what is missing or damaged is built again.
		return p.maybeArchive(ctx, tx, q, meetingID)
	})
	if err == nil {
		p.log.Info("meeting re-run: its minutes are made again", "meeting", meetingID, "run", m.Run)
	}
	return m, err
}

// cancelEarlierRuns cancels the unfinished jobs of m's earlier runs. They
// would be no-ops when they start, but one held by a hung backend or a dead
// node would keep its worker slot (and the backend's) from the new run until
// its timeout; cancelling a running job cancels its context, here or on
// the node that runs it.
func (p *Pipeline) cancelEarlierRuns(ctx context.Context, tx *sql.Tx, m store.Meeting) error {
	params := river.NewJobListParams().
		Kinds(DetectSpeechArgs{}.Kind(), VoicesArgs{}.Kind(), TranscribeArgs{}.Kind(), AssembleArgs{}.Kind()).
		States(rivertype.JobStateAvailable, rivertype.JobStatePending, rivertype.JobStateRetryable,
			rivertype.JobStateRunning, rivertype.JobStateScheduled).
		First(1000)
	for {
		res, err := p.client.JobListTx(ctx, tx, params)
		if err != nil {
			return fmt.Errorf("list the jobs of earlier runs: %w", err)
		}
		for _, j := range res.Jobs {
			var a struct {
				MeetingID string `json:"meeting_id"`
				Run       int    `json:"run"`
			}
			if err := json.Unmarshal(j.EncodedArgs, &a); err != nil || a.MeetingID != m.ID || a.Run >= m.Run {
				continue
			}
			if _, err := p.client.JobCancelTx(ctx, tx, j.ID); err != nil {
				return fmt.Errorf("cancel job %d of an earlier run: %w", j.ID, err)
			}
		}
		if len(res.Jobs) < 1000 {
			return nil
		}
		params = params.After(res.LastCursor)
	}
}

// detectAll enqueues speech detection for every stored track of m not yet
// processed, and assembly if nothing is left to wait for.
func (p *Pipeline) detectAll(ctx context.Context, tx *sql.Tx, q store.Queries, m store.Meeting) error {
	tracks, err := q.Tracks(ctx, m.ID)
	if err != nil {
		return err
	}
	var jobs []river.InsertManyParams
	for _, t := range tracks {
		if needsDetection(t) {
			jobs = append(jobs, river.InsertManyParams{Args: detectArgs(t, m.Run)})
		}
		if needsVoices(t) {
			jobs = append(jobs, river.InsertManyParams{Args: voicesArgs(t, m.Run)})
		}
	}
	if len(jobs) > 0 {
		if _, err := p.client.InsertManyTx(ctx, tx, jobs); err != nil {
			return fmt.Errorf("enqueue speech detection: %w", err)
		}
	}
	return p.maybeAssemble(ctx, tx, q, m.ID)
}

// stale reports whether a job belongs to an earlier run of the meeting's
// pipeline, which a re-run has replaced.
func (p *Pipeline) stale(ctx context.Context, meetingID string, run int) (bool, error) {
	m, err := p.store.Meeting(ctx, meetingID)
	if errors.Is(err, store.ErrNotFound) {
		return true, nil // deleted
	}
	if err != nil {
		return false, fmt.Errorf("check run of %s: %w", meetingID, err)
	}
	return m.Run != run, nil
}

// trackFailed lets the minutes go on without a track that is now final
// (failed), in the transaction that failed it.
func (p *Pipeline) trackFailed(ctx context.Context, tx *sql.Tx, q store.Queries, t store.Track) error {
	return p.maybeAssemble(ctx, tx, q, t.MeetingID)
}

// trackFinished starts a finished track's processing, in the transaction
// that recorded its final state: the pipeline works while the meeting goes
// on, so the minutes are ready soon after it ends.
func (p *Pipeline) trackFinished(ctx context.Context, tx *sql.Tx, q store.Queries, t store.Track) error {
	m, err := q.Meeting(ctx, t.MeetingID)
	if err != nil {
		return err
	}
	// The live path may have found the speech already.
	if t, err = q.Track(ctx, t.ID); err != nil {
		return err
	}
	if !m.KeepAudio {
		// Only the live path's words are kept: there is no stored audio
		// to detect speech in, tell voices apart in, or archive.
		if needsDetection(t) {
			if err := q.MarkSpeechDetected(ctx, t.ID, wordsOnlyLost); err != nil {
				return err
			}
		}
		return p.maybeAssemble(ctx, tx, q, t.MeetingID)
	}
	if needsDetection(t) {
		if _, err := p.client.InsertTx(ctx, tx, detectArgs(t, m.Run), nil); err != nil {
			return fmt.Errorf("enqueue speech detection of %s: %w", t.ID, err)
		}
	}
	if needsVoices(t) {
		if _, err := p.client.InsertTx(ctx, tx, voicesArgs(t, m.Run), nil); err != nil {
			return fmt.Errorf("enqueue diarization of %s: %w", t.ID, err)
		}
	}
	if err := p.maybeAssemble(ctx, tx, q, t.MeetingID); err != nil {
		return err
	}
	return p.maybeArchive(ctx, tx, q, t.MeetingID)
}

// wordsOnlyLost is why a track of a meeting that keeps no audio has
// speech missing: its live transcription did not hear it whole.
const wordsOnlyLost = "live transcription did not hear this track whole, and its meeting keeps no audio to transcribe it again"

func needsDetection(t store.Track) bool {
	return (t.State == store.TrackStored || t.State == store.TrackRecovered) && !t.SpeechDetected
}

// maybeAssemble moves the meeting's pipeline on after a change to its
// units: it enqueues the transcription of the segments whose turn has come
// (context.go) and, once the meeting has ended and every track and segment
// is final, the minutes' assembly. The meeting's row lock makes two stages
// finishing at once decide in turn, so one of them sees everything.
func (p *Pipeline) maybeAssemble(ctx context.Context, tx *sql.Tx, q store.Queries, meetingID string) error {
	if err := q.LockMeeting(ctx, meetingID); err != nil {
		return err
	}
	m, err := q.Meeting(ctx, meetingID)
	if err != nil {
		return err
	}
	if err := p.enqueueReady(ctx, tx, q, m); err != nil {
		return err
	}
	if m.State != store.MeetingEnded {
		return nil
	}
	prog, err := q.Progress(ctx, meetingID)
	if err != nil {
		return err
	}
	if !prog.Done() {
		return nil
	}
	if _, err := p.client.InsertTx(ctx, tx, AssembleArgs{MeetingID: meetingID, Run: m.Run}, nil); err != nil {
		return fmt.Errorf("enqueue minutes assembly: %w", err)
	}
	return nil
}

// lastAttempt reports whether a failing job will not be tried again, so
// its unit must be recorded as failed rather than left pending.
func lastAttempt(job *rivertype.JobRow) bool {
	return job.Attempt >= job.MaxAttempts
}

// retryPolicy is River's wait between a stage's attempts: the shared
// jittered exponential backoff, bounded, so that retries of many segments
// spread out instead of hitting a recovering backend together.
type retryPolicy struct{ backend.Backoff }

func (p retryPolicy) NextRetry(job *rivertype.JobRow) time.Time {
	return time.Now().Add(p.Delay(job.Attempt))
}

// detached gives a context for recording why a unit failed that outlives the
// job's own (which may have timed out).
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
}

// JobCount is how many of River's jobs of one kind are in one state.
type JobCount struct {
	Kind, State string
	Count       int
}

// JobCounts counts River's jobs by kind and state, for metrics. Finished
// jobs count until River's cleaner removes them (a day by default).
func (p *Pipeline) JobCounts(ctx context.Context) ([]JobCount, error) {
	rows, err := p.store.DB().QueryContext(ctx, `SELECT kind, state, COUNT(*) FROM river_job GROUP BY kind, state`)
	if err != nil {
		return nil, fmt.Errorf("count jobs: %w", err)
	}
	defer rows.Close()
	var out []JobCount
	for rows.Next() {
		var c JobCount
		if err := rows.Scan(&c.Kind, &c.State, &c.Count); err != nil {
			return nil, fmt.Errorf("count jobs: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}
