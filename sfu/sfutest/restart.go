package sfutest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
)

// RestartICE restarts the Publisher's ICE the WHIP way (RFC 9725): a new
// offer's credentials and candidates go in a PATCH with If-Match: "*", and
// the server's new ones come back in the answer fragment. The DTLS session
// and the stream carry on. It returns the server's new ICE ufrag.
func (p *Publisher) RestartICE(ctx context.Context) (string, error) {
	offer, err := p.pc.CreateOffer(&webrtc.OfferOptions{ICERestart: true})
	if err != nil {
		return "", fmt.Errorf("restart offer: %w", err)
	}
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(offer); err != nil {
		return "", fmt.Errorf("set restart offer: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return "", fmt.Errorf("gathering: %w", ctx.Err())
	}
	local, err := parseSDP(p.pc.LocalDescription())
	if err != nil {
		return "", fmt.Errorf("read own offer: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, p.location, strings.NewReader(fragOf(local)))
	if err != nil {
		return "", fmt.Errorf("PATCH request: %w", err)
	}
	req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
	req.Header.Set("Authorization", "Bearer "+p.token)
	req.Header.Set("If-Match", "*")
	status, body, hdr, err := doReq(p.client, req)
	if err != nil {
		return "", err
	}
	if status != http.StatusOK {
		return "", statusError(status, body)
	}
	// RFC 9725 section 4.3.2: the answer names the new ICE generation.
	etag := hdr.Get("ETag")
	if etag == "" {
		return "", errors.New("the restart's answer has no ETag")
	}
	remote, err := parseSDP(p.pc.RemoteDescription())
	if err != nil {
		return "", fmt.Errorf("read the server's answer: %w", err)
	}
	answer, ufrag, err := answerWith(remote, string(body))
	if err != nil {
		return "", err
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: answer}); err != nil {
		return "", fmt.Errorf("set restart answer: %w", err)
	}
	p.mu.Lock()
	p.etag = etag
	p.mu.Unlock()
	return ufrag, nil
}

// ETag is the session's entity tag as the server last gave it: in the
// 201 Created, then in each ICE restart's 200.
func (p *Publisher) ETag() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.etag
}

// Trickle PATCHes the Publisher's current ICE credentials and candidates
// to its session URL with If-Match ifMatch (none when empty), as a
// trickling client does, and returns the status.
func (p *Publisher) Trickle(ctx context.Context, ifMatch string) (int, error) {
	local, err := parseSDP(p.pc.LocalDescription())
	if err != nil {
		return 0, fmt.Errorf("read own offer: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPatch, p.location, strings.NewReader(fragOf(local)))
	if err != nil {
		return 0, fmt.Errorf("PATCH request: %w", err)
	}
	req.Header.Set("Content-Type", "application/trickle-ice-sdpfrag")
	req.Header.Set("Authorization", "Bearer "+p.token)
	if ifMatch != "" {
		req.Header.Set("If-Match", ifMatch)
	}
	status, _, _, err := doReq(p.client, req)
	return status, err
}

// fragOf is the SDP fragment of an offer's ICE: credentials and the first
// (bundled) section's candidates.
func fragOf(d *sdp.SessionDescription) string {
	var b strings.Builder
	m := d.MediaDescriptions[0]
	ufrag, _ := m.Attribute("ice-ufrag")
	pwd, _ := m.Attribute("ice-pwd")
	mid, _ := m.Attribute("mid")
	fmt.Fprintf(&b, "a=ice-ufrag:%s\r\na=ice-pwd:%s\r\na=mid:%s\r\n", ufrag, pwd, mid)
	for _, a := range m.Attributes {
		if a.Key == "candidate" {
			fmt.Fprintf(&b, "a=candidate:%s\r\n", a.Value)
		}
	}
	b.WriteString("a=end-of-candidates\r\n")
	return b.String()
}

// answerWith is the previous answer with the fragment's credentials and
// candidates, as the new answer to the restart offer.
func answerWith(prev *sdp.SessionDescription, frag string) (string, string, error) {
	var ufrag, pwd string
	var cands []string
	for line := range strings.Lines(frag) {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "a=ice-ufrag:"):
			ufrag = strings.TrimPrefix(line, "a=ice-ufrag:")
		case strings.HasPrefix(line, "a=ice-pwd:"):
			pwd = strings.TrimPrefix(line, "a=ice-pwd:")
		case strings.HasPrefix(line, "a=candidate:"):
			cands = append(cands, strings.TrimPrefix(line, "a=candidate:"))
		}
	}
	if ufrag == "" || pwd == "" {
		return "", "", fmt.Errorf("the server's fragment has no ICE credentials: %q", frag)
	}
	d := *prev
	d.MediaDescriptions = nil
	for i, m := range prev.MediaDescriptions {
		mc := *m
		mc.Attributes = nil
		for _, a := range m.Attributes {
			switch a.Key {
			case "ice-ufrag":
				a.Value = ufrag
			case "ice-pwd":
				a.Value = pwd
			case "candidate", "end-of-candidates":
				continue
			}
			mc.Attributes = append(mc.Attributes, a)
		}
		if i == 0 {
			for _, c := range cands {
				mc.Attributes = append(mc.Attributes, sdp.NewAttribute("candidate", c))
			}
		}
		d.MediaDescriptions = append(d.MediaDescriptions, &mc)
	}
	d.Origin.SessionVersion++
	b, err := d.Marshal()
	if err != nil {
		return "", "", fmt.Errorf("marshal answer: %w", err)
	}
	return string(b), ufrag, nil
}

// ServerICEUfrag is the server's current ICE username fragment.
func (p *Publisher) ServerICEUfrag() string {
	d, err := parseSDP(p.pc.RemoteDescription())
	if err != nil || len(d.MediaDescriptions) == 0 {
		return ""
	}
	u, _ := d.MediaDescriptions[0].Attribute("ice-ufrag")
	return u
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

// RemoteSDP is the server's answer as the Publisher applied it, with the
// candidates of the last ICE restart's answer fragment, if any.
func (p *Publisher) RemoteSDP() string {
	if d := p.pc.RemoteDescription(); d != nil {
		return d.SDP
	}
	return ""
}
