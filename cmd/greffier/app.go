package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"riverqueue.com/riverui"

	"github.com/greffier/greffier/api"
	"github.com/greffier/greffier/captions"
	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/idle"
	"github.com/greffier/greffier/internal/seal"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/internal/upload"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/meeting"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/summarize"
	"github.com/greffier/greffier/transcribe"
	"github.com/greffier/greffier/web"
)

// App is one running Greffier: every part, wired.
type App struct {
	cfg      Config
	log      *slog.Logger
	store    *store.Store
	blobs    blob.Store
	pipeline *jobs.Pipeline
	recorder *recorder.Recorder
	sfu      *sfu.SFU
	http     *http.Server
	listener net.Listener
	apiToken string
	signer   *token.Signer
	// webhookSecret signs webhooks (tests read it).
	webhookSecret string
	captions      *captions.Hub // nil without a streaming backend
	events        *meeting.EventLog
	s3            *blob.S3     // nil on disk
	idle          *idle.Reaper // nil when IdleEndAfter is 0
	metrics       *metrics
	checks        []readinessCheck
	jobsUI        *riverui.Handler
	// metricsSrv serves /metrics on cfg.MetricsAddr, when set.
	metricsSrv *http.Server
	metricsLn  net.Listener
	// generated names the secrets made at this start (not read back).
	generated []string
	stopUI    context.CancelFunc
	// atRest says how stored bytes are protected, for the banner, /readyz
	// and `greffier config`.
	atRest string
	certs  *certFiles // nil: plain HTTP
}

// NewApp opens the database and storage and builds every part. Start runs them.
func NewApp(ctx context.Context, cfg Config, logger *slog.Logger) (*App, error) {
	a := &App{cfg: cfg, log: logger, metrics: newMetrics()}
	ok := false
	defer func() {
		if !ok {
			a.closeStores()
		}
	}()
	var err error
	secrets := []struct {
		configured, file string
		into             *string
	}{{cfg.APIToken, "api-token", &a.apiToken}, {cfg.JoinSecret, "join-secret", new(string)},
		{cfg.WebhookSecret, "webhook-secret", &a.webhookSecret}}
	for _, s := range secrets {
		var generated bool
		if *s.into, generated, err = secret(s.configured, cfg.DataDir, s.file); err != nil {
			return nil, err
		}
		if generated {
			a.generated = append(a.generated, s.file)
		}
	}
	if a.signer, err = token.NewSigner([]byte(*secrets[1].into)); err != nil {
		return nil, err
	}
	if a.store, err = store.Open(ctx, store.Config{PostgresURL: cfg.PostgresURL,
		SQLitePath: filepath.Join(cfg.DataDir, "greffier.db")}); err != nil {
		return nil, err
	}
	if cfg.S3Endpoint != "" {
		a.s3, err = blob.NewS3(ctx, blob.S3Config{Endpoint: cfg.S3Endpoint, Bucket: cfg.S3Bucket,
			AccessKey: cfg.S3AccessKey, SecretKey: cfg.S3SecretKey, Region: cfg.S3Region, UseSSL: cfg.S3UseSSL,
			SpoolDir: filepath.Join(cfg.DataDir, "spool", "uploads"), Logger: logger, SSEKMSKeyID: cfg.S3SSEKMSKeyID})
		a.blobs = a.s3
	} else {
		a.blobs, err = blob.NewDisk(filepath.Join(cfg.DataDir, "blobs"))
	}
	if err != nil {
		return nil, fmt.Errorf("open blob storage: %w", err)
	}
	var keys *seal.Keyring
	if a.blobs, keys, a.atRest, err = sealBlobs(ctx, cfg, a.store, a.blobs, logger); err != nil {
		return nil, err
	}
	a.checks = readiness(cfg, a.store, a.blobs, a.atRest)
	a.blobs = countedBlobs{Store: a.blobs, errors: a.metrics.storageErrors}
	if cfg.TLSCertFile != "" {
		if a.certs, err = newCertFiles(cfg.TLSCertFile, cfg.TLSKeyFile, logger); err != nil {
			return nil, err
		}
	}
	openai, err := transcribe.NewOpenAI(transcribe.OpenAIConfig{BaseURL: cfg.TranscribeURL, APIKey: cfg.TranscribeKey,
		Model: cfg.TranscribeModel, Language: cfg.Language, Path: cfg.TranscribePath, SendWAV: cfg.TranscribeSendWAV, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("transcription backend: %w", err)
	}
	if cfg.TranscribeAttempts != 0 {
		logger.Warn("transcribe_attempts (GREFFIER_TRANSCRIBE_ATTEMPTS) is ignored: a segment's job calls the backend once per attempt; set job_max_attempts instead")
	}
	guard := transcribe.GuardConfig{Name: "transcribe", Concurrency: cfg.TranscribeConcurrency,
		BreakerCoolDown: cfg.TranscribeBreakerCoolDown, Logger: logger}
	if err := guard.Validate(); err != nil {
		return nil, fmt.Errorf("transcription backend: %w", err)
	}
	tr := transcribe.NewGuard(timedTranscriber{openai, a.metrics.backendLatency.WithLabelValues("transcription")}, guard)
	// Not under the spool: the recorder's recovery reads every
	// directory there as a meeting's.
	uploads, err := upload.New(filepath.Join(cfg.DataDir, "imports"), int64(cfg.ImportMaxSize))
	if err != nil {
		return nil, err
	}
	deps := jobs.Deps{Store: a.store, Blobs: a.blobs, Transcriber: tr, Logger: logger, Uploads: uploads, RiverLogger: demoteInfo(logger),
		TranscriberName: "transcription server " + redactURL(cfg.TranscribeURL), Announced: a.metrics.announced}
	if cfg.SummaryURL != "" {
		sum, err := summarize.New(summarize.Config{BaseURL: cfg.SummaryURL, APIKey: cfg.SummaryKey,
			Model: cfg.SummaryModel, MaxContextTokens: cfg.SummaryMaxContextTokens, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("summary backend: %w", err)
		}
		deps.Summarizer = timedSummarizer{sum, a.metrics.backendLatency.WithLabelValues("summary"),
			a.metrics.backendErrors.WithLabelValues("summary")}
	}
	var pyannote *diarize.Pyannote
	if cfg.DiarizeURL != "" {
		if pyannote, err = diarize.NewPyannote(diarize.PyannoteConfig{BaseURL: cfg.DiarizeURL, APIKey: cfg.DiarizeKey,
			WebhookURL: cfg.DiarizeWebhookURL, WebhookSecret: cfg.DiarizeWebhookSecret,
			PollInterval: cfg.DiarizePollInterval, Logger: logger}); err != nil {
			return nil, fmt.Errorf("diarization backend: %w", err)
		}
		deps.Voices = timedVoices{pyannote, a.metrics.backendLatency.WithLabelValues("diarization"),
			a.metrics.backendErrors.WithLabelValues("diarization")}
	}
	var captioner *captions.Captioner
	if cfg.CaptionsURL != "" {
		k, err := transcribe.NewKyutai(transcribe.KyutaiConfig{URL: cfg.CaptionsURL, APIKey: cfg.CaptionsKey, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("captions backend: %w", err)
		}
		a.captions = captions.NewHub()
		captioner = captions.NewCaptioner(a.captions, captions.Kyutai{K: k}, logger)
	}
	if a.pipeline, err = jobs.New(ctx, jobs.Config{TranscribeWorkers: cfg.TranscribeConcurrency,
		PollInterval: cfg.JobPollInterval, MaxAttempts: cfg.JobMaxAttempts, RetryBase: cfg.JobRetryBase,
		SnoozeBudget: cfg.JobSnoozeBudget, MaxSegment: cfg.SegmentMax, MergeSegment: cfg.SegmentMerge, WebhookSecret: []byte(a.webhookSecret), WebhookAllowPrivate: cfg.WebhookAllowPrivate,
		TempDir: filepath.Join(cfg.DataDir, "spool"), RetainRecordings: cfg.RetainRecordings, RetainTranscripts: cfg.RetainTranscripts,
		RetentionSweepInterval: cfg.RetentionSweepInterval, OpusEncoder: cfg.ImportOpusEnc,
		SpoolDirs: func(meetingID string) []string {
			spool := filepath.Join(cfg.DataDir, "spool")
			return []string{filepath.Join(spool, meetingID), filepath.Join(spool, recorder.QuarantineDir, meetingID)}
		}}, deps); err != nil {
		return nil, err
	}
	live, err := meeting.NewLive(a.store, a.pipeline, captioner, a.captions)
	if err != nil {
		return nil, err
	}
	minFree := int64(cfg.SpoolMinFree)
	if minFree == 0 {
		minFree = -1 // the recorder's "no check"; its zero means its default
	}
	var spoolKeys recorder.SpoolKeys
	if keys != nil { // a nil *Keyring in the interface would look configured
		spoolKeys = keys
	}
	if a.recorder, err = recorder.New(recorder.Config{SpoolDir: filepath.Join(cfg.DataDir, "spool"), SpoolKeys: spoolKeys,
		MinFreeBytes: minFree, MaxConcealedLoss: cfg.MaxConcealedLoss,
		// Tracks are placed by arrival on our clock, never by a
		// participant's own wall clock (browsers' are not synchronised,
		// and the live path has already placed the track's speech by
		// arrival): sender reports are trusted for no offset at all.
		SenderClockSkew: time.Nanosecond,
		Listen:          live.Listen},
		a.blobs, jobs.NewCatalog(a.pipeline), logger); err != nil {
		return nil, err
	}
	a.events = meeting.NewEventLog(a.store, logger)
	if a.sfu, err = sfu.New(sfu.Config{UDPAddr: cfg.MediaAddr, PublicIPs: cfg.PublicIPs, Observer: a.events,
		AllowedOrigins: cfg.CORSOrigins, ICETCP: cfg.ICETCP, ICEServers: cfg.ICEServers, ICEServerSecret: cfg.ICEServerSecret,
		TURN: sfu.TURNConfig{Enabled: cfg.TURN, UDPAddr: cfg.TURNUDPAddr, TCPAddr: cfg.TURNTCPAddr, TLSAddr: cfg.TURNTLSAddr,
			CertFile: cfg.TURNCertFile, KeyFile: cfg.TURNKeyFile, Realm: cfg.TURNRealm, RelayIP: cfg.TURNRelayIP, Host: cfg.TURNHost,
			RelayMinPort: cfg.TURNRelayMinPort, RelayMaxPort: cfg.TURNRelayMaxPort, Secret: cfg.TURNSecret}},
		meeting.NewJoins(a.store, logger), a.signer, meeting.NewTap(a.recorder), logger); err != nil {
		return nil, err
	}
	meetings, err := meeting.New(meeting.Deps{Store: a.store, Pipeline: a.pipeline, Media: a.sfu, Captions: a.captions})
	if err != nil {
		return nil, err
	}
	if cfg.IdleEndAfter > 0 {
		if a.idle, err = idle.New(idle.Config{After: cfg.IdleEndAfter, Logger: logger}, a.store, a.sfu, meetings); err != nil {
			return nil, err
		}
	}
	apiDeps := api.Deps{Store: a.store, Blobs: a.blobs, Ender: meetings, Rerunner: meetings, Signer: a.signer,
		Sessions: a.sfu, Logger: logger, Deleter: a.pipeline, Uploads: uploads, Importer: a.pipeline}
	if a.captions != nil { // a nil *Hub in the interface would look configured
		apiDeps.Captions = a.captions
	}
	apiSrv, err := api.New(api.Config{Token: a.apiToken, PublicURL: cfg.publicURL(), WebhookAllowPrivate: cfg.WebhookAllowPrivate,
		RetainRecordings: cfg.RetainRecordings, RetainTranscripts: cfg.RetainTranscripts}, apiDeps)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	// Every /v1 path but the media and hook endpoints is the API's: it
	// answers unknown ones in its JSON error format too.
	mux.Handle("/v1/", apiSrv.Handler())
	mux.Handle("/v1/whip", a.sfu.WHIPHandler())
	mux.Handle("/v1/whip/", a.sfu.WHIPHandler())
	mux.Handle("/v1/whep", a.sfu.WHEPHandler())
	mux.Handle("/v1/whep/", a.sfu.WHEPHandler())
	mux.Handle("/v1/ice-servers", a.sfu.ICEServersHandler())
	pages := web.Handler()
	for _, p := range []string{"GET /{$}", "/join/", "/app/", "/assets/"} {
		mux.Handle(p, pages)
	}
	if pyannote != nil && cfg.DiarizeWebhookURL != "" {
		mux.Handle("POST /v1/hooks/diarize", pyannote.WebhookHandler())
	}
	a.metrics.reg.MustRegister(&collector{store: a.store, pipeline: a.pipeline, sfu: a.sfu, recorder: a.recorder,
		guard: tr, guardFor: "transcription", log: logger})
	// Alive: answers while the process serves HTTP, whatever its
	// dependencies do (/readyz says that).
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("GET /readyz", readyHandler(a.checks))
	metricsHandler := promhttp.HandlerFor(a.metrics.reg, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(logger.Handler(), slog.LevelWarn)})
	if cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", adminOnly(apiSrv.Authenticate, metricsHandler))
	} else {
		mm := http.NewServeMux()
		mm.Handle("GET /metrics", metricsHandler)
		mm.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
		a.metricsSrv = newHTTPServer(cfg, mm, logger)
	}
	if a.jobsUI, err = riverui.NewHandler(&riverui.HandlerOpts{Endpoints: riverui.NewEndpoints(a.pipeline.Client(), nil),
		Logger: demoteInfo(logger), Prefix: jobsUIPrefix}); err != nil {
		return nil, fmt.Errorf("jobs dashboard: %w", err)
	}
	mux.Handle(jobsUIPrefix+"/", adminOnly(apiSrv.Authenticate, a.jobsUI))
	a.http = newHTTPServer(cfg, mux, logger)
	if a.certs != nil {
		a.http.TLSConfig = a.certs.tlsConfig()
		a.http.Handler = hsts(a.http.Handler)
	}
	ok = true
	return a, nil
}

// Start binds the listeners, recovers recordings a crash left behind, and
// starts the pipeline. It does not block.
func (a *App) Start(ctx context.Context) error {
	if a.s3 != nil {
		// Uploads a crash cut short would otherwise cost storage forever.
		n, err := a.s3.AbortIncompleteUploads(ctx, "")
		if err != nil {
			a.log.Warn("could not clean up incomplete uploads", "err", err)
		} else if n > 0 {
			a.log.Info("aborted uploads a crash left incomplete", "uploads", n)
		}
	}
	a.events.Start()
	if err := a.pipeline.Start(ctx); err != nil {
		return err
	}
	if err := a.recorder.Recover(ctx); err != nil {
		return fmt.Errorf("recover unfinished recordings: %w", err)
	}
	if err := a.sfu.Start(ctx); err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("the media port %s is busy (another Greffier?): set a free UDP address with %s: %w",
				a.cfg.MediaAddr, settingByName("media-addr").Flags(), err)
		}
		return err
	}
	uiCtx, stopUI := context.WithCancel(context.WithoutCancel(ctx))
	a.stopUI = stopUI
	if err := a.jobsUI.Start(uiCtx); err != nil {
		return fmt.Errorf("jobs dashboard: %w", err)
	}
	ln, err := net.Listen("tcp", a.cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("listen on %s (%s): %w", a.cfg.HTTPAddr, settingByName("http-addr").Flags(), err)
	}
	a.listener = ln
	if a.metricsSrv != nil {
		if a.metricsLn, err = net.Listen("tcp", a.cfg.MetricsAddr); err != nil {
			return fmt.Errorf("listen on %s (%s): %w", a.cfg.MetricsAddr, settingByName("metrics-addr").Flags(), err)
		}
		go func() {
			if err := a.metricsSrv.Serve(a.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				a.log.Error("metrics server stopped", "err", err)
			}
		}()
	}
	if a.idle != nil {
		// After recovery: a meeting a crash left live is ended if
		// nobody comes back to it.
		if err := a.idle.Start(ctx); err != nil {
			return err
		}
	}
	go func() {
		serve := a.http.Serve
		if a.certs != nil {
			serve = func(ln net.Listener) error { return a.http.ServeTLS(ln, "", "") }
		}
		if err := serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	a.banner(ctx)
	return nil
}

// URL is the API's base URL once started.
func (a *App) URL() string { return a.scheme() + "://" + a.listener.Addr().String() }

func (a *App) scheme() string {
	if a.certs != nil {
		return "https"
	}
	return "http"
}

// Stop closes media first (so recordings are finalized and stored), then
// HTTP, then the pipeline, then the stores.
func (a *App) Stop(ctx context.Context) error {
	var errs []error
	if a.idle != nil {
		// Before the media closes: a stopping server leaves its meetings
		// live, for its next start to find.
		a.idle.Stop()
	}
	if a.listener != nil {
		errs = append(errs, a.http.Shutdown(ctx))
	}
	if a.metricsLn != nil {
		errs = append(errs, a.metricsSrv.Shutdown(ctx))
	}
	if a.stopUI != nil {
		a.stopUI()
	}
	errs = append(errs, a.sfu.Stop(ctx))
	// Every track is closed: what a full disk or database left unfinished
	// waits for Recover at the next start.
	a.recorder.Close()
	a.events.Stop()
	errs = append(errs, a.pipeline.Stop(ctx))
	a.closeStores()
	return errors.Join(errs...)
}

func (a *App) closeStores() {
	if a.store != nil {
		_ = a.store.Close()
	}
}

// redactURL shows a backend's URL without any password in it.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	return u.Redacted()
}
