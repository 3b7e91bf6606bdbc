package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/greffier/greffier/internal/egress"
	"github.com/greffier/greffier/internal/store"
	"github.com/greffier/greffier/internal/token"
	"github.com/greffier/greffier/internal/usertext"
)

// meetingJSON is a meeting as the API shows it.
type meetingJSON struct {
	ID        string             `json:"id"`
	Title     string             `json:"title"`
	Language  string             `json:"language,omitempty"`
	State     store.MeetingState `json:"state"`
	Captions  bool               `json:"captions"`
	KeepAudio bool               `json:"keep_audio"`
	Webhook   string             `json:"webhook_url,omitempty"`
	Glossary  []string           `json:"glossary"`
	CreatedAt time.Time          `json:"created_at"`
	StartedAt *time.Time         `json:"started_at,omitempty"`
	EndedAt   *time.Time         `json:"ended_at,omitempty"`
	Failure   string             `json:"failure,omitempty"`
	Pipeline  *pipelineJSON      `json:"pipeline,omitempty"`
	Join      []joinJSON         `json:"join,omitempty"`
	WHIPURL   string             `json:"whip_url"`
	WHEPURL   string             `json:"whep_url"`
	Damaged   []damageJSON       `json:"damaged,omitempty"` // stored objects found damaged
	Retention *retentionJSON     `json:"retention,omitempty"`
	// Import, for an imported meeting: how many of its files are stored.
	Import *importJSON `json:"import,omitempty"`
	// Switches: what the meeting records now (one meeting's answers).
	Switches *switchesJSON `json:"switches,omitempty"`
}

type pipelineJSON struct {
	Tracks              int             `json:"tracks"`
	TracksRecording     int             `json:"tracks_recording"`
	TracksProcessed     int             `json:"tracks_processed"`
	TracksFailed        int             `json:"tracks_failed"`
	Segments            int             `json:"segments"`
	SegmentsTranscribed int             `json:"segments_transcribed"`
	SegmentsFailed      int             `json:"segments_failed"`
	SegmentsWaiting     int             `json:"segments_waiting"`
	MinutesVersion      int             `json:"minutes_version"`
	Failures            []store.Failure `json:"failures"`
	// Waiting are the segments waiting for a backend: which, since
	// when, and what it last answered.
	Waiting []store.Wait `json:"waiting"`
	// Webhook says how the webhook's deliveries went, once one was tried.
	Webhook *webhookJSON `json:"webhook,omitempty"`
}

// webhookJSON is what became of a meeting's webhook deliveries: a
// receiver refused, failing or unreachable shows here, not only in logs.
type webhookJSON struct {
	URLHost   string `json:"url_host"`
	LastEvent string `json:"last_event"`
	// LastError is why the latest attempt failed; absent when it was
	// delivered.
	LastError    string     `json:"last_error,omitempty"`
	FailingSince *time.Time `json:"failing_since,omitempty"`
	DeliveredAt  *time.Time `json:"delivered_at,omitempty"`
}

type joinJSON struct {
	Identity string `json:"identity"`
	// TokenID names the token, to revoke it alone
	// (DELETE /v1/meetings/{id}/tokens/{token_id}).
	TokenID     string        `json:"token_id"`
	DisplayName string        `json:"display_name"`
	Rights      []token.Right `json:"rights"`
	Token       string        `json:"token"`
	// JoinURL is the join page with the token: a link to send.
	JoinURL   string    `json:"join_url"`
	ExpiresAt time.Time `json:"expires_at"`
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func toJSON(m store.Meeting) meetingJSON {
	glossary := m.Glossary
	if glossary == nil {
		glossary = []string{}
	}
	return meetingJSON{ID: m.ID, Title: m.Title, Language: m.Language, State: m.State, Captions: m.Captions, KeepAudio: m.KeepAudio, Webhook: m.WebhookURL,
		Glossary: glossary, CreatedAt: m.CreatedAt,
		StartedAt: timePtr(m.StartedAt), EndedAt: timePtr(m.EndedAt), Failure: m.Failure,
		WHIPURL: "/v1/whip", WHEPURL: "/v1/whep"}
}

// Bounds on the text of a request, in characters.
const (
	maxTitleLen = 500
	maxNameLen  = 200
	// A glossary is told to the speech backend with every segment, inside
	// a prompt Whisper-class models cut to 224 tokens: a few dozen short
	// terms is what fits beside the speaker's previous words.
	maxGlossaryTerms = 50
	maxGlossaryTerm  = 64
)

// checkGlossary trims each term and says what is wrong, if anything.
func checkGlossary(terms []string) string {
	if len(terms) > maxGlossaryTerms {
		return fmt.Sprintf("glossary holds %d terms, over %d: keep the names and words the backend would misspell", len(terms), maxGlossaryTerms)
	}
	for i := range terms {
		terms[i] = strings.TrimSpace(terms[i])
		if terms[i] == "" {
			return fmt.Sprintf("glossary term %d is empty", i+1)
		}
		if err := usertext.CheckLine(terms[i], maxGlossaryTerm); err != nil {
			return fmt.Sprintf("glossary term %d %v", i+1, err)
		}
	}
	return ""
}

type participantRequest struct {
	Identity    string        `json:"identity"`
	DisplayName string        `json:"display_name"`
	Rights      []token.Right `json:"rights"`
	// TTLSeconds overrides the default token lifetime.
	TTLSeconds int `json:"ttl_seconds"`
	// SharedMicrophone says several people speak into this participant's
	// microphone (a room): their voices are told apart.
	SharedMicrophone bool `json:"shared_microphone"`
}

type createMeetingRequest struct {
	Title        string               `json:"title"`
	Language     string               `json:"language"`
	Captions     bool                 `json:"captions"`
	Participants []participantRequest `json:"participants"`
	// WebhookURL is told (POST, signed) when minutes are ready, the
	// pipeline failed, or the archive is ready.
	WebhookURL string `json:"webhook_url"`
	// Retention sets the meeting's own retention and legal hold.
	Retention *retentionRequest `json:"retention"`
	// Glossary lists words (names, jargon) the speech backend should
	// expect, beside the title and the participants' names.
	Glossary []string `json:"glossary"`
	// Recording and Transcription start on (the default) or off; the
	// host switches them during the meeting.
	Recording     *bool `json:"recording"`
	Transcription *bool `json:"transcription"`
	// KeepAudio false keeps only the words: the live path transcribes
	// each speech segment and its audio goes; no recording is stored.
	KeepAudio *bool `json:"keep_audio"`
}

// checkWebhook says what is wrong with a webhook URL, if anything: it must
// be http(s) and, unless the operator allows it, reach no internal address
// (the deliveries check again as they connect).
func (a *API) checkWebhook(ctx context.Context, raw string) string {
	if raw == "" {
		return ""
	}
	const form = "webhook_url must be an absolute http(s) URL of at most 2000 characters"
	if len(raw) > 2000 {
		return form
	}
	err := a.webhooks.CheckURL(ctx, raw)
	if _, ok := errors.AsType[*egress.DeniedError](err); ok {
		return "webhook_url is refused: " + err.Error() + "; webhooks reach public addresses only, " +
			"unless the operator sets GREFFIER_WEBHOOK_ALLOW_PRIVATE"
	}
	if err != nil {
		return form + ": " + err.Error()
	}
	return ""
}

func (a *API) createMeeting(w http.ResponseWriter, r *http.Request) {
	var req createMeetingRequest
	if !decodeBody(w, r, &req) {
		return
	}
	for i := range req.Participants {
		if msg := a.checkParticipant(&req.Participants[i]); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_participant", msg)
			return
		}
	}
	if msg := a.checkWebhook(r.Context(), req.WebhookURL); msg != "" {
		writeError(w, http.StatusBadRequest, "bad_webhook", msg)
		return
	}
	if !checkTitleAndLanguage(w, &req.Title, req.Language) {
		return
	}
	if msg := checkGlossary(req.Glossary); msg != "" {
		writeError(w, http.StatusBadRequest, "bad_glossary", msg)
		return
	}
	var retention store.RetentionChange
	if req.Retention != nil {
		var msg string
		if retention, msg = req.Retention.change(); msg != "" {
			writeError(w, http.StatusBadRequest, "bad_retention", msg)
			return
		}
	}
	if req.Captions && a.captions == nil {
		writeError(w, http.StatusBadRequest, "captions_unavailable", "no streaming speech backend is configured: set GREFFIER_CAPTIONS_URL")
		return
	}
	wordsOnly := req.KeepAudio != nil && !*req.KeepAudio
	if wordsOnly && req.Transcription != nil && !*req.Transcription {
		writeError(w, http.StatusBadRequest, "bad_keep_audio", `"keep_audio": false keeps only the words transcribed live: it needs transcription on`)
		return
	}
	p, _ := PrincipalFrom(r.Context())
	m, err := a.store.CreateMeetingBy(r.Context(), req.Title, req.Language, p.KeyID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	if req.WebhookURL != "" {
		if err := a.store.SetWebhook(r.Context(), m.ID, req.WebhookURL); err != nil {
			a.fail(w, r, err)
			return
		}
		m.WebhookURL = req.WebhookURL
	}
	if len(req.Glossary) > 0 {
		if err := a.store.SetGlossary(r.Context(), m.ID, req.Glossary); err != nil {
			a.fail(w, r, err)
			return
		}
		m.Glossary = req.Glossary
	}
	if wordsOnly {
		if err := a.store.SetKeepAudio(r.Context(), m.ID, false); err != nil {
			a.fail(w, r, err)
			return
		}
		m.KeepAudio = false
	}
	if req.Captions {
		if err := a.setCaptions(r, m.ID, true); err != nil {
			a.fail(w, r, err)
			return
		}
		m.Captions = true
	}
	ret, err := a.store.SetRetention(r.Context(), m.ID, retention)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	// Nobody can have joined yet: the initial switches are set at 0, with
	// no track to apply them to.
	for kind, on := range map[store.ControlKind]*bool{store.ControlRecording: req.Recording, store.ControlTranscription: req.Transcription} {
		if on != nil && !*on {
			if _, err := a.store.AddControl(r.Context(), store.Control{MeetingID: m.ID, Kind: kind}); err != nil {
				a.fail(w, r, err)
				return
			}
		}
	}
	out := toJSON(m)
	out.Retention = a.retentionJSON(m, ret)
	if out.Switches, err = a.switchesOf(r.Context(), m.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	for _, p := range req.Participants {
		if p.SharedMicrophone {
			if err := a.store.SetSharedMic(r.Context(), m.ID, p.Identity, true); err != nil {
				a.fail(w, r, err)
				return
			}
		}
		j, err := a.join(r.Context(), m.ID, p)
		if err != nil {
			a.fail(w, r, err)
			return
		}
		out.Join = append(out.Join, j)
	}
	a.log.Info("meeting created", "meeting", m.ID, "title", m.Title, "participants", len(out.Join))
	w.Header().Set("Location", "/v1/meetings/"+m.ID)
	writeJSON(w, http.StatusCreated, out)
}

// checkTitleAndLanguage trims a new meeting's title and answers 400 when
// it or the language is not one; it reports whether both are fine.
func checkTitleAndLanguage(w http.ResponseWriter, title *string, language string) bool {
	*title = strings.TrimSpace(*title)
	if err := usertext.CheckLine(*title, maxTitleLen); err != nil {
		writeError(w, http.StatusBadRequest, "bad_title", "title "+err.Error())
		return false
	}
	if !usertext.ValidLanguage(language) {
		writeError(w, http.StatusBadRequest, "bad_language", "language "+strconv.Quote(language)+
			" is not a language tag: use one such as fr, en or fr-FR, or leave it empty to let the backend detect it")
		return false
	}
	return true
}

// checkParticipant validates and fills defaults; it returns what is wrong.
func (a *API) checkParticipant(p *participantRequest) string {
	p.Identity = strings.TrimSpace(p.Identity)
	if p.Identity == "" {
		return "every participant needs an identity of 1 to 200 characters"
	}
	if err := usertext.CheckLine(p.Identity, maxNameLen); err != nil {
		return "identity " + strconv.Quote(p.Identity) + " " + err.Error()
	}
	p.DisplayName = strings.TrimSpace(p.DisplayName)
	if p.DisplayName == "" {
		p.DisplayName = p.Identity
	}
	if err := usertext.CheckLine(p.DisplayName, maxNameLen); err != nil {
		return "display_name of " + strconv.Quote(p.Identity) + " " + err.Error()
	}
	if len(p.Rights) == 0 {
		p.Rights = []token.Right{token.RightPublish, token.RightListen}
	}
	for _, r := range p.Rights {
		if !token.Known(r) {
			return "unknown right " + strconv.Quote(string(r)) + ": use publish, listen, name (the participant chooses their name) and/or minutes (the link reads the minutes afterwards)"
		}
	}
	if p.TTLSeconds < 0 || p.TTLSeconds > 7*24*3600 {
		return "ttl_seconds must be between 1 and 604800"
	}
	return ""
}

// join issues a token, recorded so that the host can revoke it.
func (a *API) join(ctx context.Context, meetingID string, p participantRequest) (joinJSON, error) {
	ttl := a.cfg.TokenTTL
	if p.TTLSeconds > 0 {
		ttl = time.Duration(p.TTLSeconds) * time.Second
	}
	c := token.Claims{ID: token.NewID(), MeetingID: meetingID, Identity: p.Identity, DisplayName: p.DisplayName, Rights: p.Rights,
		ExpiresAt: a.now().Add(ttl).Truncate(time.Second)}
	raw, err := a.signer.Sign(c)
	if err != nil {
		return joinJSON{}, err
	}
	if err := a.store.AddJoinToken(ctx, store.JoinToken{ID: c.ID, MeetingID: meetingID, Identity: p.Identity, ExpiresAt: c.ExpiresAt}); err != nil {
		return joinJSON{}, err
	}
	return joinJSON{Identity: p.Identity, TokenID: c.ID, DisplayName: p.DisplayName, Rights: p.Rights, Token: raw,
		JoinURL: a.joinURL(raw), ExpiresAt: c.ExpiresAt}, nil
}

// joinURL is the join page's address with a token. The token goes in the
// fragment, which browsers never send to a server: it stays out of
// access logs and Referer headers.
func (a *API) joinURL(raw string) string {
	return a.cfg.PublicURL + "/join/#token=" + url.QueryEscape(raw)
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var req participantRequest
	if !decodeBody(w, r, &req) {
		return
	}
	if msg := a.checkParticipant(&req); msg != "" {
		writeError(w, http.StatusBadRequest, "bad_participant", msg)
		return
	}
	if m.State != store.MeetingCreated && m.State != store.MeetingLive {
		writeError(w, http.StatusConflict, "meeting_ended", "meeting "+m.ID+" is "+string(m.State)+": nobody can join it")
		return
	}
	if req.SharedMicrophone {
		if err := a.store.SetSharedMic(r.Context(), m.ID, req.Identity, true); err != nil {
			a.fail(w, r, err)
			return
		}
	}
	j, err := a.join(r.Context(), m.ID, req)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, j)
}

// listMeetings lists meetings, newest first, a page at a time; ?state=,
// ?created_after= and ?created_before= (RFC 3339) narrow it. A host sees
// the meetings its key created, unless the key sees all meetings.
func (a *API) listMeetings(w http.ResponseWriter, r *http.Request) {
	pg, ok := pageOf(w, r, defaultPage, maxPage)
	if !ok {
		return
	}
	qs := r.URL.Query()
	f := store.MeetingFilter{State: store.MeetingState(qs.Get("state")), After: pg.after.position(), Limit: pg.limit + 1}
	if s := f.State; s != "" && !s.Valid() {
		writeError(w, http.StatusBadRequest, "bad_state", "state "+strconv.Quote(string(s))+
			" is unknown: use created, live, ended, ready, incomplete or failed")
		return
	}
	for name, t := range map[string]*time.Time{"created_after": &f.CreatedAfter, "created_before": &f.CreatedBefore} {
		if s := qs.Get(name); s != "" {
			v, err := time.Parse(time.RFC3339, s)
			if err != nil {
				writeError(w, http.StatusBadRequest, "bad_"+name, name+" must be an RFC 3339 time, such as 2026-12-01T00:00:00Z")
				return
			}
			*t = v
		}
	}
	if p, _ := PrincipalFrom(r.Context()); !p.SeesAll() {
		f.CreatedBy = p.KeyID
	}
	ms, err := a.store.MeetingsPage(r.Context(), f)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ms, next := trimPage(ms, pg.limit, func(x store.Meeting) (time.Time, string) { return x.CreatedAt, x.ID })
	out := make([]meetingJSON, len(ms))
	for i, m := range ms {
		out[i] = toJSON(m)
	}
	writeJSON(w, http.StatusOK, listJSON("meetings", out, next))
}

func (a *API) getMeeting(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	p, err := a.store.Progress(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out := toJSON(m)
	if out.Switches, err = a.switchesOf(r.Context(), m.ID); err != nil {
		a.fail(w, r, err)
		return
	}
	out.Pipeline = &pipelineJSON{Tracks: p.Tracks, TracksRecording: p.TracksRecording, TracksProcessed: p.TracksDetected,
		TracksFailed: p.TracksFailed, Segments: p.Segments, SegmentsTranscribed: p.SegmentsTranscribed,
		SegmentsFailed: p.SegmentsFailed, SegmentsWaiting: len(p.Waiting), MinutesVersion: p.MinutesVersion,
		Failures: p.Failures, Waiting: p.Waiting}
	if out.Pipeline.Failures == nil {
		out.Pipeline.Failures = []store.Failure{}
	}
	switch wh, err := a.store.WebhookStatus(r.Context(), m.ID); {
	case err == nil:
		out.Pipeline.Webhook = &webhookJSON{URLHost: wh.URLHost, LastEvent: wh.LastEvent, LastError: wh.LastError,
			FailingSince: timePtr(wh.FailingSince), DeliveredAt: timePtr(wh.DeliveredAt)}
	case !errors.Is(err, store.ErrNotFound):
		a.fail(w, r, err)
		return
	}
	damaged, err := a.store.Damaged(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	for _, d := range damaged {
		out.Damaged = append(out.Damaged, damageJSON{Key: d.BlobKey, Detail: d.Detail, FoundAt: d.FoundAt})
	}
	if out.Pipeline.Waiting == nil {
		out.Pipeline.Waiting = []store.Wait{}
	}
	ret, err := a.store.Retention(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	out.Retention = a.retentionJSON(m, ret)
	switch ip, err := a.store.ImportProgress(r.Context(), m.ID); {
	case err == nil:
		out.Import = &importJSON{Files: ip.Files, FilesDone: ip.FilesDone, UpdatedAt: ip.UpdatedAt}
	case !errors.Is(err, store.ErrNotFound):
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// importJSON is an import's progress.
type importJSON struct {
	Files     int       `json:"files"`
	FilesDone int       `json:"files_done"`
	UpdatedAt time.Time `json:"updated_at"`
}

func (a *API) endMeeting(w http.ResponseWriter, r *http.Request) {
	m, err := a.ender.EndMeeting(r.Context(), r.PathValue("id"))
	var te *store.TransitionError
	if errors.As(err, &te) && te.From == store.MeetingImporting {
		writeError(w, http.StatusConflict, "importing", "meeting "+te.MeetingID+" is importing its recordings: it ends by itself once they are stored")
		return
	}
	if errors.As(err, &te) && te.From != store.MeetingCreated && te.From != store.MeetingLive {
		writeError(w, http.StatusConflict, "already_ended", "meeting "+te.MeetingID+" has already ended (it is "+string(te.From)+")")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, toJSON(m))
}

func (a *API) listParticipants(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pg, ok := pageOf(w, r, defaultPage, maxPage)
	if !ok {
		return
	}
	all, err := a.store.Participants(r.Context(), m.ID)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	ps, next := slicePage(all, pg)
	type pj struct {
		Identity    string    `json:"identity"`
		DisplayName string    `json:"display_name"`
		JoinedAt    time.Time `json:"joined_at"`
	}
	out := make([]pj, len(ps))
	for i, p := range ps {
		out[i] = pj{p.Identity, p.DisplayName, p.JoinedAt}
	}
	writeJSON(w, http.StatusOK, listJSON("participants", out, next))
}

// renameParticipant changes a display name: renderings show it at once;
// a re-run writes it into a new minutes version.
func (a *API) renameParticipant(w http.ResponseWriter, r *http.Request) {
	var req struct {
		DisplayName string `json:"display_name"`
	}
	if !decodeBody(w, r, &req) {
		return
	}
	req.DisplayName = strings.TrimSpace(req.DisplayName)
	if req.DisplayName == "" {
		writeError(w, http.StatusBadRequest, "bad_name", "display_name must be 1 to 200 characters")
		return
	}
	if err := usertext.CheckLine(req.DisplayName, maxNameLen); err != nil {
		writeError(w, http.StatusBadRequest, "bad_name", "display_name "+err.Error())
		return
	}
	if err := a.store.Rename(r.Context(), r.PathValue("id"), r.PathValue("identity"), req.DisplayName); err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"identity": r.PathValue("identity"), "display_name": req.DisplayName})
}

func (a *API) rerunMeeting(w http.ResponseWriter, r *http.Request) {
	if m, err := a.store.Meeting(r.Context(), r.PathValue("id")); err != nil {
		a.fail(w, r, err)
		return
	} else if !m.KeepAudio {
		writeError(w, http.StatusConflict, "audio_not_kept", "meeting "+m.ID+` keeps only its words ("keep_audio": false): `+
			"no audio was kept to transcribe again, so its minutes cannot be made again")
		return
	}
	m, err := a.rerun.Rerun(r.Context(), r.PathValue("id"))
	var te *store.TransitionError
	if errors.As(err, &te) && te.From == store.MeetingFailed {
		writeError(w, http.StatusConflict, "import_failed", "meeting "+te.MeetingID+
			"'s import failed (see its failure): it has no recording to run again; import the files again")
		return
	}
	if errors.As(err, &te) {
		writeError(w, http.StatusConflict, "not_ended", "meeting "+te.MeetingID+" is "+string(te.From)+
			": end it first; only an ended meeting can be re-run")
		return
	}
	if err != nil {
		a.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, toJSON(m))
}

// listEvents lists a meeting's events (joined, left, speaking_started,
// speaking_stopped) on the meeting clock.
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) {
	m, err := a.store.Meeting(r.Context(), r.PathValue("id"))
	if err != nil {
		a.fail(w, r, err)
		return
	}
	pg, ok := pageOf(w, r, defaultPage, maxPage)
	if !ok {
		return
	}
	es, err := a.store.EventsPage(r.Context(), m.ID, pg.after.N, pg.limit+1)
	if err != nil {
		a.fail(w, r, err)
		return
	}
	var next *cursor
	if len(es) > pg.limit {
		es = es[:pg.limit]
		next = &cursor{N: es[len(es)-1].Seq}
	}
	type ej struct {
		Seq      int64     `json:"seq"`
		Kind     string    `json:"kind"`
		Identity string    `json:"identity"`
		AtMS     int64     `json:"at_ms"`
		At       time.Time `json:"at"`
	}
	out := make([]ej, len(es))
	for i, e := range es {
		out[i] = ej{Seq: e.Seq, Kind: e.Kind, Identity: e.Identity, AtMS: e.AtMS,
			At: m.StartedAt.Add(time.Duration(e.AtMS) * time.Millisecond)}
	}
	writeJSON(w, http.StatusOK, listJSON("events", out, next))
}
