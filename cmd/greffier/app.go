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
	"slices"
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
	"github.com/greffier/greffier/livekit"
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
	tap      *meeting.Tap
	sfu      *sfu.SFU
	http     *http.Server
	listener net.Listener
	apiToken string
	signer   *token.Signer
	// webhookSecret signs webhooks (tests read it).
	webhookSecret string
	captions      *captions.Hub // nil without a streaming backend
	events        *meeting.EventLog
	// relay carries host controls to other nodes (Postgres only).
	relay *meeting.Relay
	// lost looks after meetings of lost SFU nodes (Postgres sfu nodes).
	lost    *meeting.LostMedia
	s3      *blob.S3        // nil on disk
	idle    *idle.Reaper    // nil when IdleEndAfter is 0
	livekit *livekit.Source // nil without LiveKit
	rooms   *meeting.Rooms  // nil without LiveKit
	metrics *metrics
	checks  []readinessCheck
	jobsUI  *riverui.Handler
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
			return nil, fmt.Errorf("%s: %w", settingByName("data-dir").Flags(), err)
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
		dbSetting := "data-dir"
		if cfg.PostgresURL != "" {
			dbSetting = "postgres-url"
		}
		return nil, fmt.Errorf("open the database (%s): %w", settingByName(dbSetting).Flags(), err)
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
		blobSetting := "data-dir"
		if cfg.S3Endpoint != "" {
			blobSetting = "s3-endpoint"
		}
		return nil, fmt.Errorf("open blob storage (%s): %w", settingByName(blobSetting).Flags(), err)
	}
	var keys *seal.Keyring
	if a.blobs, keys, a.atRest, err = sealBlobs(ctx, cfg, a.store, a.blobs, logger); err != nil {
		return nil, err
	}
	a.checks = readiness(cfg, a.store, a.blobs, a.atRest)
	a.blobs = countedBlobs{Store: a.blobs, errors: a.metrics.storageErrors}
	if cfg.TLSCertFile != "" {
		if a.certs, err = newCertFiles(cfg.TLSCertFile, cfg.TLSKeyFile, logger); err != nil {
			return nil, fmt.Errorf("%s and %s: %w", settingByName("tls-cert-file").Flags(), settingByName("tls-key-file").Flags(), err)
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
		NodeTimeout: cfg.NodeTimeout, InsertOnly: !cfg.has(store.RoleWorker), Node: a.node, SharedUploads: cfg.PostgresURL != "",
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
		MinFreeBytes: minFree, MaxConcealedLoss: cfg.MaxConcealedLoss, CheckpointInterval: cfg.CheckpointInterval,
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
	a.tap = meeting.NewTap(a.recorder, a.store, a.events, logger)
	joins := meeting.NewJoins(a.store, logger)
	var (
		placement *meeting.Placement
		baseURL   string
	)
	if a.store.Dialect() == store.Postgres {
		// Other nodes may share this database: a meeting's media is
		// placed on one of them, and session URLs name the node when it
		// says its URL (one node behind a proxy keeps relative ones).
		if placement, err = meeting.NewPlacement(a.store, a.pipeline.NodeID(), cfg.has(store.RoleSFU), cfg.NodeTimeout); err != nil {
			return nil, err
		}
		joins = meeting.NewPlacedJoins(a.store, placement, logger)
		if cfg.NodeURL != "" {
			baseURL = cfg.nodeURL()
		} else {
			logger.Info("node-url is not set: other nodes sharing this database would redirect to "+cfg.nodeURL(),
				"setting", settingByName("node-url").Flags())
		}
	}
	if a.sfu, err = sfu.New(sfu.Config{BaseURL: baseURL, UDPAddr: cfg.MediaAddr, PublicIPs: cfg.PublicIPs, Observer: a.events,
		AllowedOrigins: cfg.CORSOrigins, ICETCP: cfg.ICETCP, ICEServers: cfg.ICEServers, ICEServerSecret: cfg.ICEServerSecret,
		TURN: sfu.TURNConfig{Enabled: cfg.TURN, UDPAddr: cfg.TURNUDPAddr, TCPAddr: cfg.TURNTCPAddr, TLSAddr: cfg.TURNTLSAddr,
			CertFile: cfg.TURNCertFile, KeyFile: cfg.TURNKeyFile, Realm: cfg.TURNRealm, RelayIP: cfg.TURNRelayIP, Host: cfg.TURNHost,
			RelayMinPort: cfg.TURNRelayMinPort, RelayMaxPort: cfg.TURNRelayMaxPort, Secret: cfg.TURNSecret}},
		joins, a.signer, a.tap, logger); err != nil {
		return nil, err
	}
	var media interface {
		meeting.Media
		api.Sessions
	} = a.sfu
	if placement != nil {
		var local meeting.LocalMedia
		if cfg.has(store.RoleSFU) {
			local = a.sfu
		}
		var hub meeting.Captions
		if a.captions != nil {
			hub = a.captions
		}
		if a.relay, err = meeting.NewRelay(a.store.PgxPool(), local, hub, a.tap, a.pipeline.NodeID(), logger); err != nil {
			return nil, err
		}
		if cfg.has(store.RoleSFU) {
			if a.lost, err = meeting.NewLostMedia(meeting.LostMediaConfig{Self: a.pipeline.NodeID(), NodeTimeout: cfg.NodeTimeout,
				RecoverAfter: cfg.LostMediaAfter, Logger: logger}, a.store, a.recorder, jobs.NewCatalog(a.pipeline)); err != nil {
				return nil, err
			}
		}
		media = a.relay
	}
	presence := meeting.Presences{a.sfu}
	ended := meeting.Medias{media}
	var roomGaps *meeting.RoomGaps
	if cfg.LiveKitURL != "" {
		roomGaps = meeting.NewRoomGaps(a.store, logger)
		if a.livekit, err = livekit.New(livekit.Config{URL: cfg.LiveKitURL, APIKey: cfg.LiveKitAPIKey, APISecret: cfg.LiveKitAPISecret,
			Logger: logger, SDKLogger: demoteInfo(logger), Outages: roomGaps.Outage}, meeting.LoggedJoins{Store: a.store, Log: logger},
			meeting.NewRoomTap(a.tap, roomGaps),
			func(id string) { a.rooms.Finished(id) }); err != nil {
			return nil, err
		}
		ended, presence = append(ended, a.livekit), append(presence, a.livekit)
	}
	meetings, err := meeting.New(meeting.Deps{Store: a.store, Pipeline: a.pipeline, Media: ended, Captions: a.captions})
	if err != nil {
		return nil, err
	}
	if cfg.IdleEndAfter > 0 && cfg.has(store.RoleSFU) {
		var held idle.Meetings = a.store
		if placement != nil {
			held = placement
		}
		if a.idle, err = idle.New(idle.Config{After: cfg.IdleEndAfter, Logger: logger}, held, presence, meetings); err != nil {
			return nil, err
		}
	}
	var switches api.Switches = a.tap
	if a.relay != nil {
		switches = meeting.RelayedSwitches{Switcher: a.tap, Relay: a.relay}
	}
	apiDeps := api.Deps{Store: a.store, Blobs: a.blobs, Ender: meetings, Rerunner: meetings, Signer: a.signer,
		Sessions: media, Logger: logger, Deleter: a.pipeline, Switches: switches, Uploads: uploads, Importer: a.pipeline, NodeTimeout: cfg.NodeTimeout}
	if a.captions != nil { // a nil *Hub in the interface would look configured
		apiDeps.Captions = a.captions
		if a.relay != nil {
			apiDeps.Captions = meeting.RelayedCaptions{Hub: a.captions, Relay: a.relay}
		}
	}
	if a.livekit != nil {
		roomsCfg := meeting.RoomsConfig{AutoRecord: cfg.LiveKitAutoRecord, Self: a.pipeline.NodeID(), Logger: logger}
		if placement != nil {
			// One node records each room: the one its meeting is placed
			// on, as for the SFU's meetings; it is checked as often as
			// lost nodes are looked for.
			roomsCfg.Owner, roomsCfg.SelfURL, roomsCfg.Interval = placement, cfg.nodeURL(), cfg.NodeTimeout/5
		}
		if a.rooms, err = meeting.NewRooms(roomsCfg, a.store, a.livekit, meetings, roomGaps); err != nil {
			return nil, err
		}
		apiDeps.LiveKit = liveKitRooms{a.rooms, livekit.NewWebhooks(cfg.LiveKitAPIKey, cfg.LiveKitAPISecret)}
	}
	apiSrv, err := api.New(api.Config{Token: a.apiToken, PublicURL: cfg.publicURL(), NodeURL: baseURL, NodeID: a.pipeline.NodeID(), WebhookAllowPrivate: cfg.WebhookAllowPrivate,
		RetainRecordings: cfg.RetainRecordings, RetainTranscripts: cfg.RetainTranscripts}, apiDeps)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	if cfg.has(store.RoleAPI) {
		// Every /v1 path but the media and hook endpoints is the API's: it
		// answers unknown ones in its JSON error format too.
		mux.Handle("/v1/", apiSrv.Handler())
		var webCfg web.Config
		if placement != nil {
			webCfg.ConnectOrigins = a.nodeOrigins
		}
		pages := web.NewHandler(webCfg)
		for _, p := range []string{"GET /{$}", "/join/", "/app/", "/assets/"} {
			mux.Handle(p, pages)
		}
	}
	// A node without media (SFU not started) answers WHIP and WHEP too,
	// redirecting each to the node that holds the meeting.
	if cfg.has(store.RoleSFU) || placement != nil {
		mux.Handle("/v1/whip", a.sfu.WHIPHandler())
		mux.Handle("/v1/whip/", a.sfu.WHIPHandler())
		mux.Handle("/v1/whep", a.sfu.WHEPHandler())
		mux.Handle("/v1/whep/", a.sfu.WHEPHandler())
		mux.Handle("/v1/ice-servers", a.sfu.ICEServersHandler())
	}
	if pyannote != nil && cfg.DiarizeWebhookURL != "" {
		mux.Handle("POST /v1/hooks/diarize", pyannote.WebhookHandler())
	}
	coll := &collector{store: a.store, pipeline: a.pipeline, sfu: a.sfu, recorder: a.recorder,
		guard: tr, guardFor: "transcription", log: logger, roles: cfg.Roles, nodeTimeout: cfg.NodeTimeout}
	if a.livekit != nil { // a nil *Source in the interface would look configured
		coll.liveKit = a.livekit
	}
	a.metrics.reg.MustRegister(coll)
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
	if a.cfg.has(store.RoleSFU) {
		if err := a.recorder.Recover(ctx); err != nil {
			return fmt.Errorf("recover unfinished recordings: %w", err)
		}
		if err := a.sfu.Start(ctx); err != nil {
			return mediaBindError(a.cfg, err)
		}
	}
	if a.relay != nil {
		if err := a.relay.Start(ctx); err != nil {
			return err
		}
	}
	if a.lost != nil {
		if err := a.lost.Start(ctx); err != nil {
			return err
		}
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
	if a.rooms != nil {
		// After recovery: the rooms of meetings a crash or a stop left
		// live are joined again, their tracks starting new segments.
		if err := a.rooms.Resume(ctx); err != nil {
			a.log.Error("could not join again the LiveKit rooms of live meetings", "err", err)
		}
		if err := a.rooms.Start(ctx); err != nil {
			return err
		}
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

// mediaBindError says which setting to change when the media port cannot
// be bound: the SFU's own error names its sockets, not the settings.
func mediaBindError(cfg Config, err error) error {
	var be *sfu.BindError
	if !errors.As(err, &be) {
		return err
	}
	media := settingByName("media-addr").Flags()
	busy := errors.Is(err, syscall.EADDRINUSE)
	switch {
	case be.Network == "tcp" && busy:
		return fmt.Errorf("the media port's number %s is busy over TCP (ICE over TCP uses it too): set a free address with %s, "+
			"or accept no ICE over TCP with --%s=false / %s=false: %w", be.Addr, media, settingByName("ice-tcp").Name,
			settingByName("ice-tcp").Env, err)
	case be.Network == "tcp":
		return fmt.Errorf("cannot listen for ICE over TCP on the media port's number %s: set another address with %s, "+
			"or --%s=false / %s=false: %w", be.Addr, media, settingByName("ice-tcp").Name, settingByName("ice-tcp").Env, err)
	case busy:
		return fmt.Errorf("the media port %s is busy (another Greffier?): set a free UDP address with %s: %w", cfg.MediaAddr, media, err)
	}
	return fmt.Errorf("cannot listen for media on %s: set a UDP address of this host with %s: %w", cfg.MediaAddr, media, err)
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
	if a.relay != nil {
		a.relay.Stop()
	}
	if a.lost != nil {
		a.lost.Stop()
	}
	errs = append(errs, a.sfu.Stop(ctx))
	if a.rooms != nil {
		a.rooms.Stop()
	}
	if a.livekit != nil {
		errs = append(errs, a.livekit.Stop(ctx))
	}
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

// node describes this process in its heartbeats.
func (a *App) node() store.Node {
	n := store.Node{Roles: a.cfg.Roles, URL: a.cfg.nodeURL()}
	if a.cfg.has(store.RoleSFU) && a.sfu != nil {
		if addr := a.sfu.UDPAddr(); addr != nil {
			n.MediaAddr = addr.String()
		}
		o := a.sfu.Occupancy()
		n.Participants = o.Publishers + o.Listeners
	}
	return n
}

// nodeOrigins are the origins of the live nodes' own URLs, which the web
// pages may call when redirected there.
func (a *App) nodeOrigins(ctx context.Context) []string {
	nodes, err := a.store.Nodes(ctx, time.Now().Add(-a.cfg.NodeTimeout))
	if err != nil {
		a.log.Warn("pages' policy: could not list the nodes", "err", err)
		return nil
	}
	var out []string
	for _, n := range nodes {
		u, err := url.Parse(n.URL)
		if err != nil || u.Host == "" {
			continue
		}
		if o := u.Scheme + "://" + u.Host; !slices.Contains(out, o) {
			out = append(out, o)
		}
	}
	return out
}

// redactURL shows a backend's URL without any password in it.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unreadable URL)"
	}
	return u.Redacted()
}

// liveKitRooms is the API's view of LiveKit: the meetings' rooms and
// LiveKit's webhooks.
type liveKitRooms struct {
	*meeting.Rooms
	*livekit.Webhooks
}
