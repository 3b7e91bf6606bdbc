package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/greffier/greffier/diarize"
	"github.com/greffier/greffier/internal/blob"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/jobs"
	"github.com/greffier/greffier/recorder"
	"github.com/greffier/greffier/sfu"
	"github.com/greffier/greffier/summarize"
	"github.com/greffier/greffier/transcribe"
)

// metrics is Greffier's Prometheus registry. What the parts already count
// (the SFU's packets, the recorder's tracks, the guard's calls and
// breaker, the database's meetings and River's jobs) is read at scrape
// time by collector; only what nothing counted before is counted here:
// backend latencies, storage errors, minutes latency.
type metrics struct {
	reg            *prometheus.Registry
	backendLatency *prometheus.HistogramVec
	backendErrors  *prometheus.CounterVec
	storageErrors  *prometheus.CounterVec
	minutesLatency prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		backendLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "greffier_backend_request_seconds",
			Help:    "Time a speech or summary backend took to answer one request, by backend.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}}, []string{"backend"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "greffier_backend_errors_total",
			Help: "Calls to the summary and diarization backends that failed (after the client's own retries), by backend (transcription: greffier_transcribe_calls_total)."}, []string{"backend"}),
		storageErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "greffier_storage_errors_total",
			Help: "Blob storage (disk or S3) operations that failed, by operation; a missing object is no error."}, []string{"op"}),
		minutesLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "greffier_minutes_latency_seconds",
			Help:    "Time from a meeting's end to its minutes (ready, incomplete or failed).",
			Buckets: []float64{1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600}}),
	}
	m.reg.MustRegister(m.backendLatency, m.backendErrors, m.storageErrors, m.minutesLatency,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// announced observes the minutes latency (jobs.Deps.Announced).
func (m *metrics) announced(mt store.Meeting, event string) {
	switch event {
	case jobs.EventMinutesReady, jobs.EventMinutesIncomplete, jobs.EventMeetingFailed:
		if !mt.EndedAt.IsZero() && mt.Run <= 1 { // a re-run's minutes measure the re-run, not the meeting
			m.minutesLatency.Observe(time.Since(mt.EndedAt).Seconds())
		}
	}
}

// collector reads the parts' own counters at scrape time.
type collector struct {
	store    *store.Store
	pipeline *jobs.Pipeline
	sfu      *sfu.SFU
	recorder *recorder.Recorder
	guard    *transcribe.Guard
	guardFor string // the guard's backend label
	// roles and nodeTimeout describe this node and who counts as alive.
	roles       []string
	nodeTimeout time.Duration
	log         *slog.Logger
	// liveKit counts the LiveKit rooms and tracks this node records (nil
	// without LiveKit).
	liveKit interface{ Recording() (rooms, tracks int) }
}

var (
	descMeetings       = prometheus.NewDesc("greffier_meetings", "Meetings in the database, by state.", []string{"state"}, nil)
	descNodes          = prometheus.NewDesc("greffier_nodes", "Nodes sharing the database, by whether they beat within the node timeout.", []string{"alive"}, nil)
	descNodeMeetings   = prometheus.NewDesc("greffier_node_live_meetings", "Live meetings whose media is placed on each node.", []string{"node"}, nil)
	descLiveKitRooms   = prometheus.NewDesc("greffier_livekit_rooms_recorded", "LiveKit rooms this node has joined to record (absent without LiveKit).", nil, nil)
	descLiveKitTracks  = prometheus.NewDesc("greffier_livekit_tracks_recorded", "LiveKit participants' audio tracks this node is recording now (absent without LiveKit).", nil, nil)
	descNodeInfo       = prometheus.NewDesc("greffier_node_info", "This process: its node id and roles (always 1).", []string{"node", "roles"}, nil)
	descRooms          = prometheus.NewDesc("greffier_meetings_connected", "Meetings with someone connected to this server's media now.", nil, nil)
	descParticipants   = prometheus.NewDesc("greffier_participants", "Media sessions open now: publishers (WHIP) and listeners (WHEP).", []string{"kind"}, nil)
	descPacketsIn      = prometheus.NewDesc("greffier_sfu_packets_received_total", "RTP packets read from publishers, dropped ones included.", nil, nil)
	descPacketsOut     = prometheus.NewDesc("greffier_sfu_packets_forwarded_total", "RTP packets written to listeners.", nil, nil)
	descPacketsDropped = prometheus.NewDesc("greffier_sfu_packets_dropped_total", "RTP packets the SFU dropped, by reason.", []string{"reason"}, nil)
	descRecTracks      = prometheus.NewDesc("greffier_recorder_tracks", "Tracks being recorded now.", nil, nil)
	descRecWritten     = prometheus.NewDesc("greffier_recorder_packets_written_total", "Packets written into recordings.", nil, nil)
	descRecLost        = prometheus.NewDesc("greffier_recorder_packets_lost_total", "Packets never received in time (network loss): sequence numbers skipped in recordings.", nil, nil)
	descRecDropped     = prometheus.NewDesc("greffier_recorder_packets_dropped_total", "Packets the recorder did not write, by reason.", []string{"reason"}, nil)
	descRecLag         = prometheus.NewDesc("greffier_recorder_queued_packets", "Packets received and not yet written to the spool: how far the recorder is behind.", nil, nil)
	descSpoolBytes     = prometheus.NewDesc("greffier_spool_bytes", "Bytes in the spool directory: tracks being recorded or waiting to be stored.", nil, nil)
	descJobs           = prometheus.NewDesc("greffier_jobs", "River jobs by kind and state (finished ones until River's cleaner removes them).", []string{"kind", "state"}, nil)
	descCalls          = prometheus.NewDesc("greffier_transcribe_calls_total", "Transcription calls by outcome: success, failure (the backend failed), rejected (failed fast by the open breaker, or the failure that opened it).", []string{"backend", "outcome"}, nil)
	descInFlight       = prometheus.NewDesc("greffier_transcribe_in_flight", "Transcription requests running now and waiting for a permit.", []string{"backend", "phase"}, nil)
	descBreaker        = prometheus.NewDesc("greffier_backend_breaker_state", "The circuit breaker of a backend: 0 closed, 1 open, 2 half-open.", []string{"backend"}, nil)
	descBreakerOpened  = prometheus.NewDesc("greffier_backend_breaker_opened_total", "How often a backend's breaker opened.", []string{"backend"}, nil)
	descScrapeErrors   = prometheus.NewDesc("greffier_metrics_errors", "Parts of this scrape that could not be read (1), by source; their series are missing.", []string{"source"}, nil)
)

// collectorDescs are every family collector emits. Describing them (rather
// than collecting once to find them) keeps registration off the database,
// and lets the registry refuse, at each scrape, a series of a family not
// listed here; docs/operations.md lists the same families
// (TestOperationsDocListsEveryMetric).
var collectorDescs = []*prometheus.Desc{descMeetings, descNodes, descNodeMeetings, descLiveKitRooms, descLiveKitTracks,
	descNodeInfo, descRooms, descParticipants, descPacketsIn, descPacketsOut, descPacketsDropped, descRecTracks, descRecWritten,
	descRecLost, descRecDropped, descRecLag, descSpoolBytes, descJobs, descCalls, descInFlight, descBreaker, descBreakerOpened,
	descScrapeErrors}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range collectorDescs {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	failed := func(source string, err error) {
		c.log.Warn("metrics: could not read "+source, "err", err)
		gauge(descScrapeErrors, 1, source)
	}

	if c.liveKit != nil {
		rooms, tracks := c.liveKit.Recording()
		gauge(descLiveKitRooms, float64(rooms))
		gauge(descLiveKitTracks, float64(tracks))
	}
	if counts, err := c.store.MeetingCounts(ctx); err != nil {
		failed("database", err)
	} else {
		for _, st := range []store.MeetingState{store.MeetingImporting, store.MeetingCreated, store.MeetingLive, store.MeetingEnded,
			store.MeetingReady, store.MeetingIncomplete, store.MeetingFailed, store.MeetingDeleting} {
			gauge(descMeetings, float64(counts[st]), string(st))
		}
	}
	if counts, err := c.pipeline.JobCounts(ctx); err != nil {
		failed("jobs", err)
	} else {
		for _, j := range counts {
			gauge(descJobs, float64(j.Count), j.Kind, j.State)
		}
	}

	gauge(descNodeInfo, 1, c.pipeline.NodeID(), strings.Join(c.roles, ","))
	if nodes, err := c.store.Nodes(ctx, time.Now().Add(-24*time.Hour)); err != nil {
		failed("nodes", err)
	} else {
		alive := 0
		for _, n := range nodes {
			if !n.HeartbeatAt.Before(time.Now().Add(-c.nodeTimeout)) {
				alive++
			}
		}
		gauge(descNodes, float64(alive), "true")
		gauge(descNodes, float64(len(nodes)-alive), "false")
	}
	if placed, err := c.store.PlacedMeetings(ctx); err != nil {
		failed("nodes", err)
	} else {
		for node, n := range placed {
			gauge(descNodeMeetings, float64(n), node)
		}
	}
	occ := c.sfu.Occupancy()
	gauge(descRooms, float64(occ.Meetings))
	gauge(descParticipants, float64(occ.Publishers), "publisher")
	gauge(descParticipants, float64(occ.Listeners), "listener")
	s := c.sfu.Stats()
	counter(descPacketsIn, float64(s.PacketsReceived))
	counter(descPacketsOut, float64(s.PacketsForwarded))
	counter(descPacketsDropped, float64(s.DroppedTooLarge), "too_large")
	counter(descPacketsDropped, float64(s.DroppedRate), "rate")
	counter(descPacketsDropped, float64(s.DroppedMalformed), "malformed")
	counter(descPacketsDropped, float64(s.DroppedSRTP), "srtp")

	r := c.recorder.Stats()
	gauge(descRecTracks, float64(r.Tracks))
	counter(descRecWritten, float64(r.Packets.Written))
	counter(descRecLost, float64(r.Packets.Lost))
	for reason, n := range map[string]int64{"late": r.Packets.Late, "duplicate": r.Packets.Duplicate,
		"garbage": r.Packets.Garbage, "bad_timestamp": r.Packets.BadTimestamp, "overflow": r.Packets.Overflow} {
		counter(descRecDropped, float64(n), reason)
	}
	gauge(descRecLag, float64(r.Queued))
	gauge(descSpoolBytes, float64(r.SpoolBytes))

	g := c.guard.Stats()
	counter(descCalls, float64(g.Successes), c.guardFor, "success")
	counter(descCalls, float64(g.Failures), c.guardFor, "failure")
	counter(descCalls, float64(g.Rejected), c.guardFor, "rejected")
	gauge(descInFlight, float64(g.InFlight), c.guardFor, "running")
	gauge(descInFlight, float64(g.Waiting), c.guardFor, "waiting")
	gauge(descBreaker, float64(g.State), c.guardFor)
	counter(descBreakerOpened, float64(g.Opened), c.guardFor)
}

// timedTranscriber measures each request to the transcription backend
// (inside the guard: one attempt each); its errors are the guard's.
type timedTranscriber struct {
	inner   transcribe.Transcriber
	latency prometheus.Observer
}

func (t timedTranscriber) Transcribe(ctx context.Context, req transcribe.Request) (transcribe.Result, error) {
	start := time.Now()
	res, err := t.inner.Transcribe(ctx, req)
	t.latency.Observe(time.Since(start).Seconds())
	return res, err
}

// timedSummarizer measures the summary backend.
type timedSummarizer struct {
	inner   *summarize.Summarizer
	latency prometheus.Observer
	errors  prometheus.Counter
}

func (t timedSummarizer) Summarize(ctx context.Context, tr summarize.Transcript) (*summarize.Summary, error) {
	start := time.Now()
	s, err := t.inner.Summarize(ctx, tr)
	t.latency.Observe(time.Since(start).Seconds())
	if err != nil && ctx.Err() == nil {
		t.errors.Inc()
	}
	return s, err
}

// timedVoices measures the diarization backend.
type timedVoices struct {
	inner   jobs.Voices
	latency prometheus.Observer
	errors  prometheus.Counter
}

func (t timedVoices) Upload(ctx context.Context, key string, r io.Reader, size int64) (string, error) {
	u, err := t.inner.Upload(ctx, key, r, size)
	if err != nil && ctx.Err() == nil {
		t.errors.Inc()
	}
	return u, err
}

func (t timedVoices) Diarize(ctx context.Context, audioURL string, length time.Duration) ([]diarize.Turn, error) {
	start := time.Now()
	turns, err := t.inner.Diarize(ctx, audioURL, length)
	t.latency.Observe(time.Since(start).Seconds())
	if err != nil && ctx.Err() == nil {
		t.errors.Inc()
	}
	return turns, err
}

// countedBlobs counts the blob store's failures; a missing object is an
// answer, not a failure.
type countedBlobs struct {
	blob.Store
	errors *prometheus.CounterVec
}

// authenticatedRanger is the sealing store's range read (internal/seal).
type authenticatedRanger interface {
	GetAuthenticatedRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, bool, error)
}

// GetAuthenticatedRange passes the sealing store's range reads through, so
// that downloads of a range read only its chunks.
func (b countedBlobs) GetAuthenticatedRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, bool, error) {
	ar, ok := b.Store.(authenticatedRanger)
	if !ok {
		return nil, false, nil
	}
	rc, sealed, err := ar.GetAuthenticatedRange(ctx, key, off, n)
	b.count("get", err)
	return rc, sealed, err
}

func (b countedBlobs) count(op string, err error) {
	if err != nil && !errors.Is(err, blob.ErrNotFound) && !errors.Is(err, context.Canceled) {
		b.errors.WithLabelValues(op).Inc()
	}
}

func (b countedBlobs) Put(ctx context.Context, key string, r io.Reader, size int64) (blob.Info, error) {
	info, err := b.Store.Put(ctx, key, r, size)
	b.count("put", err)
	return info, err
}

func (b countedBlobs) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	rc, err := b.Store.Get(ctx, key)
	b.count("get", err)
	return rc, err
}

func (b countedBlobs) Stat(ctx context.Context, key string) (blob.Info, error) {
	info, err := b.Store.Stat(ctx, key)
	b.count("stat", err)
	return info, err
}

func (b countedBlobs) Delete(ctx context.Context, key string) error {
	err := b.Store.Delete(ctx, key)
	b.count("delete", err)
	return err
}

func (b countedBlobs) List(ctx context.Context, prefix string) ([]blob.Info, error) {
	infos, err := b.Store.List(ctx, prefix)
	b.count("list", err)
	return infos, err
}
