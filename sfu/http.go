package sfu

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"github.com/greffier/greffier/internal/token"
)

// WHIPHandler serves WHIP (RFC 9725): POST an SDP offer to publish, DELETE
// the returned Location to leave. cmd mounts it at /v1/whip and /v1/whip/.
func (s *SFU) WHIPHandler() http.Handler { return s.handler(kindPublish) }

// WHEPHandler serves WHEP the same way, to listen. cmd mounts it at
// /v1/whep and /v1/whep/.
func (s *SFU) WHEPHandler() http.Handler { return s.handler(kindListen) }

// apiError is an HTTP failure on its way to the client.
type apiError struct {
	status int
	// code, message: for a 307 (codeMoved), message is the target URL.
	code, message string
}

func (s *SFU) handler(kind sessionKind) http.Handler {
	endpoint := "/v1/" + string(kind)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.setCORS(w, r)
		onEndpoint := strings.TrimSuffix(r.URL.Path, "/") == endpoint
		var aerr *apiError
		switch {
		case r.Method == http.MethodOptions && onEndpoint:
			s.serveOptions(w, r, "POST, OPTIONS", "application/sdp")
		case r.Method == http.MethodOptions:
			s.serveOptions(w, r, "PATCH, DELETE, OPTIONS", "")
		case r.Method == http.MethodPost && onEndpoint:
			aerr = s.serveOffer(w, r, kind)
		case r.Method == http.MethodDelete && !onEndpoint:
			aerr = s.serveDelete(w, r, kind)
		case r.Method == http.MethodPatch && !onEndpoint:
			aerr = s.servePatch(w, r, kind)
		case onEndpoint:
			w.Header().Set("Allow", "POST, OPTIONS")
			aerr = &apiError{http.StatusMethodNotAllowed, codeMethod, r.Method + " is not supported on the endpoint; POST an offer"}
		default:
			w.Header().Set("Allow", "PATCH, DELETE, OPTIONS")
			aerr = &apiError{http.StatusMethodNotAllowed, codeMethod, r.Method + " is not supported on a session URL; PATCH ICE or DELETE the session"}
		}
		if aerr != nil {
			if aerr.code == codeMoved {
				w.Header().Set("Location", aerr.message)
				aerr.message = "this meeting's media is on another node: send the offer to " + aerr.message
			}
			writeError(w, aerr.status, aerr.code, aerr.message)
		}
	})
}

func rightFor(kind sessionKind) token.Right {
	if kind == kindPublish {
		return token.RightPublish
	}
	return token.RightListen
}

func (s *SFU) authorize(r *http.Request, kind sessionKind) (token.Claims, *apiError) {
	raw, ok := token.FromAuthorization(r.Header.Get("Authorization"))
	if !ok {
		return token.Claims{}, &apiError{http.StatusUnauthorized, codeUnauthorized, "send the join token as Authorization: Bearer <token>"}
	}
	claims, err := s.verifier.Verify(raw)
	if err != nil {
		return token.Claims{}, &apiError{http.StatusUnauthorized, codeUnauthorized, "join token refused: " + err.Error()}
	}
	if right := rightFor(kind); !claims.Can(right) {
		return token.Claims{}, &apiError{http.StatusForbidden, codeForbidden, fmt.Sprintf("this join token lacks the %q right", right)}
	}
	return claims, nil
}

func (s *SFU) serveOffer(w http.ResponseWriter, r *http.Request, kind sessionKind) *apiError {
	claims, aerr := s.authorize(r, kind)
	if aerr != nil {
		return aerr
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/sdp" {
		return &apiError{http.StatusUnsupportedMediaType, codeMediaType, "send the offer with Content-Type: application/sdp"}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSDPSize))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return &apiError{http.StatusRequestEntityTooLarge, codeTooLarge, fmt.Sprintf("the offer exceeds %d bytes", MaxSDPSize)}
		}
		return &apiError{http.StatusBadRequest, codeBadSDP, "reading the offer: " + err.Error()}
	}
	offer, audioLines, aerr := checkOffer(body, kind)
	if aerr != nil {
		return aerr
	}
	offerSDP := string(body)
	if kind == kindListen {
		if offerSDP, err = receiveOnly(offer); err != nil {
			return &apiError{http.StatusBadRequest, codeBadSDP, "the offer could not be rewritten: " + err.Error()}
		}
	}

	if aerr := s.place(r.Context(), claims); aerr != nil {
		if aerr.code == codeMoved {
			aerr.message += r.URL.RequestURI()
		}
		return aerr
	}
	rm, zero, aerr := s.admit(r.Context(), claims)
	if aerr != nil {
		return aerr
	}
	if at, ok := s.tap.(AdmissionTap); ok && kind == kindPublish {
		info := TrackInfo{MeetingID: claims.MeetingID, Identity: claims.Identity, DisplayName: claims.DisplayName,
			ClockZero: zero, FirstPacketAt: time.Now()}
		if err := at.CanRecord(r.Context(), info); err != nil {
			s.releaseIdentity(rm, claims, true)
			return &apiError{http.StatusInsufficientStorage, codeNotRecordable,
				"this participant cannot be recorded now, so publishing is refused: " + err.Error()}
		}
	}
	sess, answer, aerr := s.newSession(r.Context(), kind, claims, rm, zero, offerSDP, offer, audioLines)
	if aerr != nil {
		s.releaseIdentity(rm, claims, true)
		return aerr
	}
	w.Header().Set("Content-Type", "application/sdp")
	w.Header().Set("Location", strings.TrimSuffix(s.cfg.BaseURL, "/")+"/v1/"+string(kind)+"/"+sess.id)
	setICELinks(w.Header(), s.ICEServers(claims))
	// The room's event stream, read with the same join token, tells
	// whether the meeting is recorded and when that changes: clients that
	// are not the room page must be told as its users are.
	w.Header().Add("Link", "</v1/meetings/"+url.PathEscape(claims.MeetingID)+"/room>; rel=\"urn:ietf:params:whip:ext:greffier:events\"")
	if ldesc, err := parseSDP(sess.pc.LocalDescription()); err == nil {
		w.Header().Set("ETag", etag(iceOf(ldesc).ufrag))
	}
	w.WriteHeader(http.StatusCreated)
	_, _ = io.WriteString(w, answer)
	return nil
}

// checkOffer parses the SDP, caps its sections and counts its Opus audio
// sections. An offer without Opus is valid SDP with nothing we accept: 406
// for WHIP, 422 for WHEP, whose draft gives 406 another meaning (a
// counter-offer the client must answer with a PATCH).
func checkOffer(body []byte, kind sessionKind) (*sdp.SessionDescription, int, *apiError) {
	var desc sdp.SessionDescription
	if err := desc.UnmarshalString(string(body)); err != nil {
		return nil, 0, &apiError{http.StatusBadRequest, codeBadSDP, "the offer is not valid SDP: " + err.Error()}
	}
	audio := 0
	for _, m := range desc.MediaDescriptions {
		if m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			audio++
		}
	}
	maxAudio := MaxListenSections
	if kind == kindPublish {
		maxAudio = MaxPublishSections
	}
	switch {
	case audio > maxAudio:
		return nil, 0, &apiError{http.StatusBadRequest, codeTooManySections, fmt.Sprintf(
			"the offer has %d audio sections; %s takes at most %d: offer one section per microphone (WHIP) or per speaker heard at once (WHEP)",
			audio, strings.ToUpper(string(kind)), maxAudio)}
	case len(desc.MediaDescriptions) > MaxOfferSections:
		return nil, 0, &apiError{http.StatusBadRequest, codeTooManySections, fmt.Sprintf(
			"the offer has %d media sections; Greffier takes at most %d", len(desc.MediaDescriptions), MaxOfferSections)}
	}
	n := 0
	for _, m := range desc.MediaDescriptions {
		if m.MediaName.Media != "audio" || m.MediaName.Port.Value == 0 {
			continue
		}
		for _, a := range m.Attributes {
			if a.Key == "rtpmap" && strings.Contains(strings.ToLower(a.Value), "opus/48000") {
				n++
				break
			}
		}
	}
	if n == 0 {
		return nil, 0, &apiError{noOpusStatus(kind), codeNoOpus, "the offer has no Opus audio; Greffier takes Opus audio only"}
	}
	if offerSetup(&desc) == "passive" {
		// The SFU must be the DTLS server to key its media path
		// (dtlskeys.go); JSEP offers say actpass.
		return nil, 0, &apiError{http.StatusBadRequest, codeBadSDP,
			"the offer has a=setup:passive; offer a=setup:actpass (or active): Greffier is the DTLS server"}
	}
	return &desc, n, nil
}

// noOpusStatus is the status for an offer without Opus (see checkOffer).
func noOpusStatus(kind sessionKind) int {
	if kind == kindListen {
		return http.StatusUnprocessableEntity
	}
	return http.StatusNotAcceptable
}

// offerSetup is the offer's DTLS setup role as pion reads it: the first
// a=setup of any media section.
func offerSetup(desc *sdp.SessionDescription) string {
	for _, m := range desc.MediaDescriptions {
		if v, ok := m.Attribute("setup"); ok {
			return v
		}
	}
	return ""
}

// headerEncryption reports whether pion's answer grants RFC 9335 header
// encryption: pion grants it to every RTP section or none, only when the
// offer asked for it in its RTP sections, and keys its own SRTP from the
// same answer. (RTPTransceiver.RTPHeaderEncryptionNegotiated says so only
// once DTLS has started.)
func headerEncryption(pc *webrtc.PeerConnection) bool {
	answer, err := parseSDP(pc.LocalDescription())
	if err != nil {
		return false
	}
	if _, ok := answer.Attribute(sdp.AttrKeyCryptex); ok {
		return true
	}
	for _, m := range answer.MediaDescriptions {
		if _, ok := m.Attribute(sdp.AttrKeyCryptex); ok && m.MediaName.Media == "audio" && m.MediaName.Port.Value != 0 {
			return true
		}
	}
	return false
}

// admit reserves the identity's seat in the meeting and joins it.
// place asks the Meetings where the meeting's media is, when they can
// say (Placer): nil means here.
func (s *SFU) place(ctx context.Context, claims token.Claims) *apiError {
	p, ok := s.meetings.(Placer)
	if !ok {
		return nil
	}
	err := p.Place(ctx, claims.MeetingID)
	if err == nil {
		return nil
	}
	if moved, ok := errors.AsType[*MovedError](err); ok {
		return &apiError{http.StatusTemporaryRedirect, codeMoved, strings.TrimSuffix(moved.BaseURL, "/")}
	}
	switch {
	case errors.Is(err, ErrMeetingNotFound):
		return &apiError{http.StatusNotFound, codeMeetingNotFound, "no meeting " + claims.MeetingID}
	case errors.Is(err, ErrNoMediaNode):
		return &apiError{http.StatusServiceUnavailable, codeUnavailable, "no media server is running; retry later"}
	}
	s.log.Error("placing meeting", "meeting", claims.MeetingID, "err", err)
	return &apiError{http.StatusInternalServerError, codeInternal, "could not find the meeting's media server; retry later"}
}

// notHere answers for a session URL this node does not know: 307 to the
// node holding the meeting's media when it is another (a client that
// resolved a relative session URL against a load balancer), else 404.
func (s *SFU) notHere(r *http.Request, claims token.Claims) *apiError {
	if aerr := s.place(r.Context(), claims); aerr != nil && aerr.code == codeMoved {
		aerr.message += r.URL.RequestURI()
		return aerr
	}
	return &apiError{http.StatusNotFound, codeSessionNotFound, "no such session for this token"}
}

func (s *SFU) admit(ctx context.Context, claims token.Claims) (*room, time.Time, *apiError) {
	s.mu.Lock()
	if s.state != stateRunning {
		s.mu.Unlock()
		return nil, time.Time{}, &apiError{http.StatusServiceUnavailable, codeUnavailable, "media server is not running; retry later"}
	}
	if s.isEnded(claims.MeetingID) {
		s.mu.Unlock()
		return nil, time.Time{}, &apiError{http.StatusConflict, codeMeetingEnded, "this meeting has ended"}
	}
	rm := s.rooms[claims.MeetingID]
	if rm == nil {
		rm = newRoom(claims.MeetingID, s.cfg, s.log)
		s.rooms[claims.MeetingID] = rm
		go rm.run()
	}
	if rm.identities[claims.Identity] == 0 && len(rm.identities) >= s.cfg.MaxParticipants {
		s.mu.Unlock()
		return nil, time.Time{}, &apiError{http.StatusServiceUnavailable, codeMeetingFull,
			fmt.Sprintf("the meeting already has %d participants, its limit", s.cfg.MaxParticipants)}
	}
	rm.identities[claims.Identity]++
	s.mu.Unlock()

	zero, err := s.meetings.Join(ctx, claims)
	if err != nil {
		s.releaseIdentity(rm, claims, false)
		switch {
		case errors.Is(err, ErrTokenRevoked):
			return nil, time.Time{}, &apiError{http.StatusUnauthorized, codeTokenRevoked,
				"this join token was revoked by the meeting's host; ask them for a new one"}
		case errors.Is(err, ErrMeetingNotFound):
			return nil, time.Time{}, &apiError{http.StatusNotFound, codeMeetingNotFound, "no meeting " + claims.MeetingID}
		case errors.Is(err, ErrMeetingClosed):
			return nil, time.Time{}, &apiError{http.StatusConflict, codeMeetingEnded, "this meeting has ended"}
		}
		s.log.Error("joining meeting", "meeting", claims.MeetingID, "err", err)
		return nil, time.Time{}, &apiError{http.StatusInternalServerError, codeInternal, "could not join the meeting; retry later"}
	}
	s.mu.Lock()
	first := !rm.joined[claims.Identity]
	rm.joined[claims.Identity] = true
	rm.zero = zero
	s.mu.Unlock()
	if first {
		s.observe(Event{Kind: EventJoined, MeetingID: claims.MeetingID, Identity: claims.Identity, At: time.Now(), ClockZero: zero})
	}
	return rm, zero, nil
}

// releaseIdentity undoes one admit. The identity's last release leaves the
// meeting (when it had joined) and the meeting's last one stops its room.
func (s *SFU) releaseIdentity(rm *room, claims token.Claims, joined bool) {
	s.mu.Lock()
	rm.identities[claims.Identity]--
	last := rm.identities[claims.Identity] <= 0
	left := false
	if last {
		delete(rm.identities, claims.Identity)
		left = rm.joined[claims.Identity]
		delete(rm.joined, claims.Identity)
	}
	zero := rm.zero
	empty := len(rm.identities) == 0
	if empty && s.rooms[rm.id] == rm {
		delete(s.rooms, rm.id)
	}
	ctx := s.baseCtx
	s.mu.Unlock()
	if empty {
		rm.stop()
	}
	if left {
		s.observe(Event{Kind: EventLeft, MeetingID: claims.MeetingID, Identity: claims.Identity, At: time.Now(), ClockZero: zero})
	}
	if last && joined {
		if err := s.meetings.Leave(ctx, claims.MeetingID, claims.Identity); err != nil {
			s.log.Error("leaving meeting", "meeting", claims.MeetingID, "identity", claims.Identity, "err", err)
		}
	}
}

// release is a closed session's last step.
func (s *SFU) release(sess *session) {
	s.mu.Lock()
	delete(s.sessions, sess.id)
	s.mu.Unlock()
	s.releaseIdentity(sess.room, sess.claims, true)
}

func (s *SFU) nextTrackSeq() uint64 { return s.trackSeq.Add(1) }

// newSession builds the PeerConnection, applies the offer and returns the
// answer with every candidate gathered.
func (s *SFU) newSession(ctx context.Context, kind sessionKind, claims token.Claims, rm *room, zero time.Time,
	offer string, parsed *sdp.SessionDescription, audioLines int,
) (*session, string, *apiError) {
	internal := func(what string, err error) (*session, string, *apiError) {
		s.log.Error("creating session", "step", what, "err", err)
		return nil, "", &apiError{http.StatusInternalServerError, codeInternal, "could not set up media: " + what}
	}
	var reporter [4]byte
	_, _ = rand.Read(reporter[:])
	sess := &session{
		id:           newSessionID(),
		kind:         kind,
		claims:       claims,
		clockZero:    zero,
		sfu:          s,
		room:         rm,
		link:         &link{router: &s.router},
		reporterSSRC: binary.BigEndian.Uint32(reporter[:]),
	}
	sess.log = s.log.With("session", sess.id, "kind", string(kind), "meeting", claims.MeetingID, "identity", claims.Identity)
	keys := &dtlsKeys{}
	if kind == kindPublish {
		sess.in = &inbound{stats: &s.stats, onBad: func(n uint64, err error) {
			sess.log.Warn("dropping RTP packet that fails SRTP", "count", n, "err", err)
		}}
		sess.link.in = sess.in
		keys.receive = true
	} else {
		sess.link.out = &outbound{}
		keys.send = true
	}
	api, err := s.newAPI(keys, sess.sink)
	if err != nil {
		return internal("webrtc api", err)
	}
	cert, err := s.certificate()
	if err != nil {
		return internal("certificate", err)
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{Certificates: []webrtc.Certificate{cert}})
	if err != nil {
		return internal("peer connection", err)
	}
	sess.pc = pc
	sess.follow(keys)
	fail := func(aerr *apiError) (*session, string, *apiError) {
		// The caller releases the seat: use up close's once so the state
		// callback's close cannot release it a second time.
		sess.once.Do(func() {})
		sess.link.close()
		sess.leaveRoom()
		sess.mu.Lock()
		sess.closed = true
		sess.mu.Unlock()
		_ = pc.Close()
		sess.wg.Wait()
		return nil, "", aerr
	}
	pc.OnConnectionStateChange(sess.onConnectionState)
	if err := pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: offer}); err != nil {
		return fail(&apiError{http.StatusBadRequest, codeBadSDP, "the offer was refused: " + err.Error()})
	}
	if kind == kindListen {
		l := &listener{identity: claims.Identity}
		for i := range min(audioLines, s.cfg.Slots) {
			slot := newSlotTrack(fmt.Sprintf("slot%d", i), "greffier-"+claims.MeetingID, sess.link.out)
			if _, err := pc.AddTrack(slot); err != nil {
				_, _, aerr := internal("add slot track", err)
				return fail(aerr)
			}
			l.slots = append(l.slots, slot)
		}
		sess.listener = l
	}
	answer, err := pc.CreateAnswer(nil)
	if err != nil {
		return fail(&apiError{http.StatusBadRequest, codeBadSDP, "no answer fits this offer: " + err.Error()})
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(answer); err != nil {
		_, _, aerr := internal("set local description", err)
		return fail(aerr)
	}
	keys.setCryptex(headerEncryption(pc))
	if kind == kindPublish {
		if err := sess.publish(parsed); err != nil {
			return fail(&apiError{noOpusStatus(kind), codeNoOpus, "no Opus audio could be received: " + err.Error()})
		}
	}
	timer := time.NewTimer(s.cfg.GatherTimeout)
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C:
		_, _, aerr := internal("ICE gathering timed out", errors.New("gathering timeout"))
		return fail(aerr)
	case <-ctx.Done():
		return fail(&apiError{http.StatusServiceUnavailable, codeUnavailable, "request cancelled"})
	}

	answerSDP, err := askForDTX(pc.LocalDescription().SDP)
	if err == nil {
		answerSDP, err = onlyRTPCandidates(answerSDP)
	}
	if err != nil {
		_, _, aerr := internal("answer", err)
		return fail(aerr)
	}

	// In the room before it can be closed (once registered), so that a
	// close always finds what it must take out.
	sess.joinRoom()
	s.mu.Lock()
	ended := s.isEnded(claims.MeetingID)
	running := s.state == stateRunning
	var replaced []*session
	if running && !ended {
		s.sessions[sess.id] = sess
		replaced = s.takeSessions(claims.MeetingID, claims.Identity, "", kind, sess)
	}
	s.mu.Unlock()
	switch {
	case ended:
		return fail(&apiError{http.StatusConflict, codeMeetingEnded, "this meeting has ended"})
	case !running:
		return fail(&apiError{http.StatusServiceUnavailable, codeUnavailable, "media server is stopping"})
	}
	// One session of each kind per identity, the newest, as other SFUs
	// do: someone with a leaked link cannot speak or listen as that
	// person beside them, and a client that reconnects without DELETE
	// does not leave its old session behind. The old recording ends and
	// is stored like any other; Stop and EndMeeting wait for it.
	for _, old := range replaced {
		old.log.Info("session replaced by a newer one of the same identity", "by", sess.id)
		go old.close()
	}
	sess.log.Info("session opened")
	return sess, answerSDP, nil
}

// takeSessions marks as deleted and returns the sessions of identity in
// meetingID (of kind, unless kind is ""; opened with tokenID, unless it is
// ""), but not except. Called with s.mu held.
func (s *SFU) takeSessions(meetingID, identity, tokenID string, kind sessionKind, except *session) []*session {
	var out []*session
	for _, o := range s.sessions {
		if o == except || o.deleted || o.claims.MeetingID != meetingID || o.claims.Identity != identity ||
			(kind != "" && o.kind != kind) || (tokenID != "" && o.claims.ID != tokenID) {
			continue
		}
		o.deleted = true
		out = append(out, o)
	}
	return out
}

func (s *SFU) serveDelete(w http.ResponseWriter, r *http.Request, kind sessionKind) *apiError {
	claims, aerr := s.authorize(r, kind)
	if aerr != nil {
		return aerr
	}
	id := path.Base(r.URL.Path)
	s.mu.Lock()
	sess := s.sessions[id]
	found := sess != nil && !sess.deleted && sess.kind == kind &&
		sess.claims.MeetingID == claims.MeetingID && sess.claims.Identity == claims.Identity
	if found {
		sess.deleted = true
	}
	s.mu.Unlock()
	if !found {
		return s.notHere(r, claims)
	}
	// The recording's upload may take a while; Stop and EndMeeting wait
	// for it, the client need not.
	go sess.close()
	w.WriteHeader(http.StatusOK)
	return nil
}
