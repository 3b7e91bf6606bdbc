package sfu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// sdpFragType is the body of WHIP/WHEP PATCH requests (RFC 8840).
const sdpFragType = "application/trickle-ice-sdpfrag"

// sdpFrag is the part of an SDP fragment the SFU reads or writes: ICE
// credentials and candidates.
type sdpFrag struct {
	ufrag, pwd string
	mid        string
	candidates []string // "candidate:..." without "a="
}

func parseFrag(body string) sdpFrag {
	var f sdpFrag
	for line := range strings.Lines(body) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			f.ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			f.pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=mid:") && f.mid == "":
			f.mid = strings.TrimPrefix(line, "a=mid:")
		case strings.HasPrefix(line, "a=candidate:"):
			f.candidates = append(f.candidates, strings.TrimPrefix(line, "a="))
		}
	}
	return f
}

func (f sdpFrag) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\n", f.ufrag, f.pwd)
	if f.mid != "" {
		fmt.Fprintf(&b, "a=mid:%s\r\n", f.mid)
	}
	for _, c := range f.candidates {
		fmt.Fprintf(&b, "a=%s\r\n", c)
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

// iceOf reads the ICE credentials and candidates of a description; with
// BUNDLE, the first accepted media section's are everyone's. A rejected
// section (port 0: the video an OBS-like client offers beside its audio)
// has no credentials of its own, but pion writes the candidates of an
// answer into the first section whatever its port: they are gathered from
// every section.
func iceOf(desc *sdp.SessionDescription) sdpFrag {
	var f sdpFrag
	f.ufrag, _ = desc.Attribute("ice-ufrag")
	f.pwd, _ = desc.Attribute("ice-pwd")
	if i := firstAccepted(desc); i >= 0 {
		m := desc.MediaDescriptions[i]
		f.mid, _ = m.Attribute("mid")
		if v, ok := m.Attribute("ice-ufrag"); ok {
			f.ufrag = v
		}
		if v, ok := m.Attribute("ice-pwd"); ok {
			f.pwd = v
		}
	}
	for _, m := range desc.MediaDescriptions {
		for _, a := range m.Attributes {
			if c := "candidate:" + a.Value; a.Key == "candidate" && rtpComponent(a.Value) && !slices.Contains(f.candidates, c) {
				f.candidates = append(f.candidates, c)
			}
		}
	}
	return f
}

// firstAccepted is the index of desc's first media section with a port
// (in an offer, the first section), -1 when it has none.
func firstAccepted(desc *sdp.SessionDescription) int {
	for i, m := range desc.MediaDescriptions {
		if m.MediaName.Port.Value != 0 {
			return i
		}
	}
	return -1
}

// withICE returns desc's SDP with f's credentials and candidates in place
// of its own, and the next session version: the offer (or answer) an ICE
// restart amounts to.
func withICE(desc *sdp.SessionDescription, f sdpFrag) (string, error) {
	replace := func(attrs []sdp.Attribute, first bool) []sdp.Attribute {
		out := attrs[:0:0]
		for _, a := range attrs {
			switch a.Key {
			case "ice-ufrag":
				a.Value = f.ufrag
			case "ice-pwd":
				a.Value = f.pwd
			case "candidate", "end-of-candidates":
				continue
			}
			out = append(out, a)
		}
		if first {
			for _, c := range f.candidates {
				out = append(out, sdp.NewAttribute("candidate", strings.TrimPrefix(c, "candidate:")))
			}
			out = append(out, sdp.NewPropertyAttribute("end-of-candidates"))
		}
		return out
	}
	d := *desc
	d.Attributes = replace(desc.Attributes, false)
	d.MediaDescriptions = make([]*sdp.MediaDescription, len(desc.MediaDescriptions))
	for i, m := range desc.MediaDescriptions {
		mc := *m
		mc.Attributes = replace(m.Attributes, i == 0)
		d.MediaDescriptions[i] = &mc
	}
	d.Origin.SessionVersion++
	b, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("marshal SDP: %w", err)
	}
	return string(b), nil
}

// etag names a session's ICE generation: its current local ufrag.
func etag(ufrag string) string { return strconv.Quote(ufrag) }

// servePatch serves RFC 9725 PATCH: new credentials restart ICE (the
// answer carries the SFU's new credentials and candidates), the same
// credentials with candidates are trickle.
func (s *SFU) servePatch(w http.ResponseWriter, r *http.Request, kind sessionKind) *apiError {
	sess, aerr := s.sessionFor(r, kind)
	if aerr != nil {
		return aerr
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != sdpFragType {
		return &apiError{http.StatusUnsupportedMediaType, codeMediaType, "send ICE changes with Content-Type: " + sdpFragType}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxSDPSize))
	if err != nil {
		return &apiError{http.StatusBadRequest, codeBadSDP, "reading the fragment: " + err.Error()}
	}
	frag := parseFrag(string(body))
	if frag.ufrag == "" || frag.pwd == "" {
		return &apiError{http.StatusBadRequest, codeBadSDP, "the fragment needs a=ice-ufrag and a=ice-pwd"}
	}
	sess.negMu.Lock()
	defer sess.negMu.Unlock()
	remote, local := sess.pc.RemoteDescription(), sess.pc.LocalDescription()
	if remote == nil || local == nil {
		return &apiError{http.StatusConflict, codeBadSDP, "the session is not negotiated"}
	}
	rdesc, err := parseSDP(remote)
	if err != nil {
		return &apiError{http.StatusInternalServerError, codeInternal, "reading the session's offer"}
	}
	ldesc, err := parseSDP(local)
	if err != nil {
		return &apiError{http.StatusInternalServerError, codeInternal, "reading the session's answer"}
	}
	cur := iceOf(rdesc)
	ifMatch := r.Header.Get("If-Match")
	if frag.ufrag == cur.ufrag && frag.pwd == cur.pwd {
		if ifMatch != "" && ifMatch != "*" && ifMatch != etag(iceOf(ldesc).ufrag) {
			return &apiError{http.StatusPreconditionFailed, codeStale, "the session's ICE was restarted since; use its new ETag"}
		}
		for _, c := range frag.candidates {
			c, ok := trickledRTPCandidate(c)
			if !ok {
				continue
			}
			mid := cur.mid
			if err := sess.pc.AddICECandidate(webrtc.ICECandidateInit{Candidate: c, SDPMid: &mid}); err != nil {
				return &apiError{http.StatusBadRequest, codeBadSDP, "candidate refused: " + err.Error()}
			}
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
	if ifMatch != "*" {
		return &apiError{http.StatusPreconditionRequired, codePrecondition, `an ICE restart needs If-Match: "*"`}
	}
	answer, aerr := s.restartICE(r.Context(), sess, rdesc, frag)
	if aerr != nil {
		return aerr
	}
	w.Header().Set("Content-Type", sdpFragType)
	w.Header().Set("ETag", etag(answer.ufrag))
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, answer.String())
	return nil
}

// restartICE applies the client's new credentials as a new offer and
// returns the SFU's new credentials and candidates. The DTLS association,
// the tracks and the recording carry on.
func (s *SFU) restartICE(ctx context.Context, sess *session, offer *sdp.SessionDescription, frag sdpFrag) (sdpFrag, *apiError) {
	internal := func(what string, err error) (sdpFrag, *apiError) {
		sess.log.Error("ICE restart", "step", what, "err", err)
		return sdpFrag{}, &apiError{http.StatusInternalServerError, codeInternal, "ICE restart failed: " + what}
	}
	inUse := "udp"
	if p, err := sess.pc.SCTP().Transport().ICETransport().GetSelectedCandidatePair(); err == nil && overTCP(p) {
		inUse = "tcp"
	}
	newOffer, err := withICE(offer, frag)
	if err != nil {
		return internal("build offer", err)
	}
	if err := sess.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: newOffer}); err != nil {
		return sdpFrag{}, &apiError{http.StatusBadRequest, codeBadSDP, "ICE restart refused: " + err.Error()}
	}
	answer, err := sess.pc.CreateAnswer(nil)
	if err != nil {
		return internal("create answer", err)
	}
	gathered := webrtc.GatheringCompletePromise(sess.pc)
	if err := sess.pc.SetLocalDescription(answer); err != nil {
		return internal("set answer", err)
	}
	timer := time.NewTimer(s.cfg.GatherTimeout)
	defer timer.Stop()
	select {
	case <-gathered:
	case <-timer.C:
		return internal("gathering", errors.New("gathering timeout"))
	case <-ctx.Done():
		return sdpFrag{}, &apiError{http.StatusServiceUnavailable, codeUnavailable, "request cancelled"}
	}
	ldesc, err := parseSDP(sess.pc.LocalDescription())
	if err != nil {
		return internal("read answer", err)
	}
	sess.log.Info("ICE restarted")
	ours := iceOf(ldesc)
	ours.candidates = restartCandidates(ours.candidates, frag.candidates, inUse)
	return ours, nil
}

// restartCandidates are the SFU's candidates a restart's answer fragment
// carries: those of the transports the client's fragment lists, or, when
// it lists none (it trickles them afterwards), of the transport in use.
// whip-whep 1.2.0, the widely used browser client, splices the answer's
// candidate lines joined by commas, so a fragment of more than one line
// breaks its restart; with one address per transport this keeps it to one.
func restartCandidates(own, theirs []string, inUse string) []string {
	want := map[string]bool{}
	for _, c := range theirs {
		want[candidateTransport(c)] = true
	}
	if len(want) == 0 {
		want[inUse] = true
	}
	return slices.DeleteFunc(own, func(c string) bool { return !want[candidateTransport(c)] })
}

// candidateTransport is a candidate's transport, lower case ("udp", "tcp").
func candidateTransport(c string) string {
	f := strings.Fields(strings.TrimPrefix(c, "candidate:"))
	if len(f) < 3 {
		return ""
	}
	return strings.ToLower(f[2])
}

// sessionFor finds the session a PATCH or DELETE names, for its own token.
func (s *SFU) sessionFor(r *http.Request, kind sessionKind) (*session, *apiError) {
	claims, aerr := s.authorize(r, kind)
	if aerr != nil {
		return nil, aerr
	}
	id := path.Base(r.URL.Path)
	s.mu.Lock()
	sess := s.sessions[id]
	found := sess != nil && !sess.deleted && sess.kind == kind &&
		sess.claims.MeetingID == claims.MeetingID && sess.claims.Identity == claims.Identity
	s.mu.Unlock()
	if !found {
		return nil, s.notHere(r, claims)
	}
	return sess, nil
}

// parseSDP parses a description pion owns. Its Unmarshal method caches
// into the shared struct, racing with pion's own readers: parse a copy.
func parseSDP(desc *webrtc.SessionDescription) (*sdp.SessionDescription, error) {
	if desc == nil {
		return nil, errors.New("no description")
	}
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc.SDP); err != nil {
		return nil, err
	}
	return &d, nil
}

// rtpComponent reports whether a candidate (an a=candidate value, with or
// without its "candidate:" prefix) is for component 1, RTP. rtcp-mux is
// mandatory here (RFC 8829), so component 2 candidates, which pion lists
// beside every component 1 one, name the same address and only confuse
// clients that splice candidates into an SDP themselves.
func rtpComponent(c string) bool {
	f := strings.Fields(strings.TrimPrefix(c, "candidate:"))
	return len(f) > 1 && f[1] == "1"
}

// trickledRTPCandidate is a trickled candidate as the SFU uses it, and
// whether to use it: component 1 only (rtcp-mux), and a component 0, which
// no RFC allows but @eyevinn/whip-web-client 1.1.7 sends for RTP (it
// numbers components from 0), taken as 1.
func trickledRTPCandidate(c string) (string, bool) {
	f := strings.Fields(strings.TrimPrefix(c, "candidate:"))
	if len(f) < 2 {
		return c, true // let pion say what is wrong with it
	}
	switch f[1] {
	case "1":
		return c, true
	case "0":
		f[1] = "1"
		return "candidate:" + strings.Join(f, " "), true
	}
	return c, false
}

// onlyRTPCandidates drops every candidate of an answer but component 1's,
// and moves those pion wrote into a rejected first section (port 0) to
// the first accepted one, the BUNDLE group's: browsers ignore candidates
// of a rejected section ("JsepTransport doesn't exist"), so a client that
// offered video first and does not trickle could never connect.
func onlyRTPCandidates(desc string) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(desc); err != nil {
		return "", fmt.Errorf("parse answer: %w", err)
	}
	first := firstAccepted(&d)
	var moved []sdp.Attribute
	for i, m := range d.MediaDescriptions {
		m.Attributes = slices.DeleteFunc(m.Attributes, func(a sdp.Attribute) bool {
			isCandidate := a.Key == "candidate" || a.Key == "end-of-candidates"
			if isCandidate && m.MediaName.Port.Value == 0 && first > i {
				if a.Key == "end-of-candidates" || rtpComponent(a.Value) {
					moved = append(moved, a)
				}
				return true
			}
			return a.Key == "candidate" && !rtpComponent(a.Value)
		})
	}
	if len(moved) > 0 {
		m := d.MediaDescriptions[first]
		m.Attributes = append(m.Attributes, moved...)
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("write answer: %w", err)
	}
	return string(out), nil
}

// receiveOnly rewrites a WHEP offer's audio directions to recvonly, so
// that pion answers sendonly whatever the client said: the WHEP draft
// wants sendonly answers, and a listener's audio has nowhere to go.
func receiveOnly(desc *sdp.SessionDescription) (string, error) {
	for _, m := range desc.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		for i, a := range m.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "inactive":
				m.Attributes[i] = sdp.NewPropertyAttribute("recvonly")
			}
		}
	}
	out, err := desc.Marshal()
	if err != nil {
		return "", fmt.Errorf("write offer: %w", err)
	}
	return string(out), nil
}
