package sfu

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// askForDTX adds usedtx=1 to the Opus formats of an answer: the answerer's
// fmtp says what it prefers to receive (RFC 7587), and a browser that
// honours it sends a packet every 400 ms while its participant is silent
// instead of one every 20 ms. That silence is most of a meeting's audio for
// everyone but the speaker, and the SFU, the recorder and the pipeline are
// spared it. pion answers with the offer's fmtp, so this edits the SDP.
func askForDTX(answer string) (string, error) {
	var d sdp.SessionDescription
	if err := d.UnmarshalString(answer); err != nil {
		return "", fmt.Errorf("parse answer: %w", err)
	}
	for _, m := range d.MediaDescriptions {
		if m.MediaName.Media != "audio" {
			continue
		}
		for _, pt := range m.MediaName.Formats {
			n, err := strconv.ParseUint(pt, 10, 8)
			if err != nil {
				continue
			}
			c, err := d.GetCodecForPayloadType(uint8(n))
			if err != nil || !strings.EqualFold(c.Name, "opus") {
				continue
			}
			if fmtpHas(c.Fmtp, "usedtx") {
				continue
			}
			setFmtp(m, pt, strings.TrimPrefix(c.Fmtp+";usedtx=1", ";"))
		}
	}
	out, err := d.Marshal()
	if err != nil {
		return "", fmt.Errorf("write answer: %w", err)
	}
	return string(out), nil
}

func fmtpHas(fmtp, key string) bool {
	for _, kv := range strings.Split(fmtp, ";") {
		k, _, _ := strings.Cut(strings.TrimSpace(kv), "=")
		if strings.EqualFold(k, key) {
			return true
		}
	}
	return false
}

// setFmtp replaces payload type pt's fmtp attribute of m, or adds one.
func setFmtp(m *sdp.MediaDescription, pt, params string) {
	value := pt + " " + params
	for i, a := range m.Attributes {
		if a.Key == "fmtp" && strings.HasPrefix(a.Value, pt+" ") {
			m.Attributes[i].Value = value
			return
		}
	}
	m.Attributes = append(m.Attributes, sdp.NewAttribute("fmtp", value))
}
