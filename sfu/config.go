package sfu

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults for Config fields left zero.
const (
	DefaultUDPAddr                = "127.0.0.1:7882"
	DefaultMaxParticipants        = 150
	DefaultSlots                  = 3
	DefaultMaxPacketSize          = 1500
	DefaultICEDisconnectedTimeout = 3 * time.Second
	DefaultICEFailedTimeout       = 6 * time.Second
	DefaultICEKeepalive           = 1 * time.Second
	DefaultSelectInterval         = 100 * time.Millisecond
	DefaultSwitchHold             = 1 * time.Second
	DefaultSwitchMargin           = 6
	DefaultGatherTimeout          = 5 * time.Second
	DefaultMaxPacketRate          = 150
	DefaultSpeakingLevel          = 50
	DefaultEndedMeetingTTL        = 24 * time.Hour
	DefaultUDPBufferSize          = 4 << 20
	DefaultTURNUDPAddr            = ":3478"
	DefaultTURNTCPAddr            = ":3478"
	DefaultTURNTLSAddr            = ":5349"
	DefaultTURNRealm              = "greffier"
	// DefaultICECredentialTTL is the longest TURN credentials last: less
	// when their join token expires sooner.
	DefaultICECredentialTTL = 12 * time.Hour
	// MaxEndedMeetings bounds the list of ended meetings kept to refuse
	// late joins; the oldest are forgotten first.
	MaxEndedMeetings = 10000
	// MaxSDPSize caps an offer's body; a real audio offer is a few KiB.
	MaxSDPSize = 64 << 10
	// MaxPublishSections caps the audio sections of a WHIP offer: one
	// microphone per session. Each section would be a track to set up,
	// forward and record.
	MaxPublishSections = 1
	// MaxListenSections caps the audio sections of a WHEP offer: a
	// listener is given at most Slots (at most 16) of them; more only
	// cost the SFU work.
	MaxListenSections = 16
	// MaxOfferSections caps an offer's media sections of any kind.
	MaxOfferSections = 32
)

// Config configures an SFU. The zero value is usable: WithDefaults fills
// every zero field with its default.
type Config struct {
	// BaseURL, when set, makes session URLs (WHIP and WHEP Location)
	// absolute on it: with several nodes behind a load balancer, a client
	// then PATCHes and DELETEs the node that holds its session, whichever
	// URL it first POSTed to. Default: relative session URLs.
	BaseURL string
	// UDPAddr is the one UDP address every PeerConnection's media uses.
	// Default DefaultUDPAddr; "127.0.0.1:0" picks a free port (tests).
	UDPAddr string
	// UDPBufferSize is the media socket's kernel receive and send buffer.
	// All participants share that one socket: at 150 publishers a stall of
	// 30 ms overflows Linux's 208 KiB default and drops packets. Linux caps
	// it at net.core.rmem_max and wmem_max: raise those to match. Default
	// DefaultUDPBufferSize.
	UDPBufferSize int
	// PublicIPs are announced instead of the bound address when Greffier is
	// behind a 1:1 NAT. Default none.
	PublicIPs []string
	// MaxParticipants caps the distinct identities connected to one
	// meeting. Default DefaultMaxParticipants.
	MaxParticipants int
	// Slots is how many speakers a listener hears at once (the loudest
	// ones). Default DefaultSlots.
	Slots int
	// MaxPacketSize is the largest RTP packet (header and payload, after
	// SRTP) a publisher may send; larger ones are dropped before the Tap,
	// counted in Stats.DroppedTooLarge and logged (sampled). Opus at its
	// highest bitrate stays under 1,300 bytes. Default DefaultMaxPacketSize.
	MaxPacketSize int
	// MaxPacketRate caps the packets per second one published track may
	// send, with a one-second burst allowance (a network stall delivers a
	// backlog at once). Packets beyond it are dropped before the Tap and
	// counted in Stats.DroppedRate. Opus at our minptime of 10 ms needs at
	// most 100. Default DefaultMaxPacketRate.
	MaxPacketRate int
	// SpeakingLevel is the RFC 6464 level (dB below full scale, 0 loudest,
	// 127 silence) at or above which (louder) a track counts as speaking
	// for the Observer's speaking events. Default DefaultSpeakingLevel.
	SpeakingLevel int
	// Observer, when set, is told of joins, leaves and speaking turns.
	// Default none.
	Observer Observer
	// EndedMeetingTTL is how long an ended meeting stays in the SFU's own
	// refusal list (at most MaxEndedMeetings entries). Meetings.Join still
	// refuses it after that; the list only closes the race between
	// EndMeeting and a join in flight. Default DefaultEndedMeetingTTL.
	EndedMeetingTTL time.Duration
	// ICEDisconnectedTimeout, ICEFailedTimeout and ICEKeepalive decide how
	// fast a vanished peer is noticed and its recording closed. Defaults
	// DefaultICEDisconnectedTimeout, DefaultICEFailedTimeout,
	// DefaultICEKeepalive.
	ICEDisconnectedTimeout time.Duration
	ICEFailedTimeout       time.Duration
	ICEKeepalive           time.Duration
	// SelectInterval is how often each meeting re-ranks its speakers.
	// Default DefaultSelectInterval.
	SelectInterval time.Duration
	// SwitchHold is how long a speaker keeps a slot before a louder one may
	// take it. Default DefaultSwitchHold.
	SwitchHold time.Duration
	// SwitchMargin is how many dB louder (smoothed) a challenger must be
	// than a slot's holder to take the slot. Default DefaultSwitchMargin.
	SwitchMargin int
	// GatherTimeout bounds ICE gathering before an answer is sent. Default
	// DefaultGatherTimeout.
	GatherTimeout time.Duration
	// AllowedOrigins are the web origins (scheme://host[:port]) whose
	// pages may call WHIP and WHEP (CORS). Default none listed: any origin,
	// since every request carries its join token in a header, never a
	// cookie, so another origin's page gains nothing it was not given.
	AllowedOrigins []string
	// ICETCP also accepts ICE over TCP (RFC 6544, passive candidates) on
	// the media port's number, for participants whose network lets no UDP
	// out. Default false.
	ICETCP bool
	// TURN runs the embedded TURN server. Default off.
	TURN TURNConfig
	// ICEServers are external STUN/TURN server URLs (stun:, turn:,
	// turns:) given to clients, beside or instead of the embedded TURN
	// server. Default none.
	ICEServers []string
	// ICEServerSecret is the external TURN servers' shared secret (the TURN
	// REST API scheme, coturn's static-auth-secret): their credentials are
	// derived from each join token with it. Default none: turn: URLs are
	// given without credentials.
	ICEServerSecret string
}

// TURNConfig configures the embedded TURN server (RFC 8656). Clients get
// short-lived credentials derived from their join token (TURN REST API
// scheme: username "<expiry>:<token id>", password HMAC-SHA1 of it).
type TURNConfig struct {
	// Enabled starts the server. Default false.
	Enabled bool
	// UDPAddr and TCPAddr are where it listens. Defaults DefaultTURNUDPAddr
	// and DefaultTURNTCPAddr; "-" turns one off.
	UDPAddr, TCPAddr string
	// TLSAddr is where it listens for TURN over TLS (turns:), only when
	// CertFile and KeyFile are set. Default DefaultTURNTLSAddr.
	TLSAddr string
	// CertFile and KeyFile are a PEM certificate and key for TURN over TLS.
	// Default none: no TLS.
	CertFile, KeyFile string
	// Realm is the TURN realm. Default DefaultTURNRealm.
	Realm string
	// RelayIP is the address relayed candidates are given out as. Default:
	// the first of PublicIPs, else the media address's IP when it is
	// specific, else this host's first non-loopback IPv4.
	RelayIP string
	// Host is the name or address put in the turn: URLs clients get.
	// Default RelayIP.
	Host string
	// RelayMinPort and RelayMaxPort bound the UDP ports relays are opened
	// on (open them in the firewall). Default 0: any free port.
	RelayMinPort, RelayMaxPort int
	// Secret signs the credentials. Default: random at each start, so
	// credentials given out before a restart stop working (clients get new
	// ones with their next POST).
	Secret string
}

// WithDefaults returns a copy of c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.UDPAddr == "" {
		c.UDPAddr = DefaultUDPAddr
	}
	if c.MaxParticipants == 0 {
		c.MaxParticipants = DefaultMaxParticipants
	}
	if c.Slots == 0 {
		c.Slots = DefaultSlots
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacketSize
	}
	if c.ICEDisconnectedTimeout == 0 {
		c.ICEDisconnectedTimeout = DefaultICEDisconnectedTimeout
	}
	if c.ICEFailedTimeout == 0 {
		c.ICEFailedTimeout = DefaultICEFailedTimeout
	}
	if c.ICEKeepalive == 0 {
		c.ICEKeepalive = DefaultICEKeepalive
	}
	if c.SelectInterval == 0 {
		c.SelectInterval = DefaultSelectInterval
	}
	if c.SwitchHold == 0 {
		c.SwitchHold = DefaultSwitchHold
	}
	if c.SwitchMargin == 0 {
		c.SwitchMargin = DefaultSwitchMargin
	}
	if c.GatherTimeout == 0 {
		c.GatherTimeout = DefaultGatherTimeout
	}
	if c.UDPBufferSize == 0 {
		c.UDPBufferSize = DefaultUDPBufferSize
	}
	if c.MaxPacketRate == 0 {
		c.MaxPacketRate = DefaultMaxPacketRate
	}
	if c.SpeakingLevel == 0 {
		c.SpeakingLevel = DefaultSpeakingLevel
	}
	if c.EndedMeetingTTL == 0 {
		c.EndedMeetingTTL = DefaultEndedMeetingTTL
	}
	if c.TURN.UDPAddr == "" {
		c.TURN.UDPAddr = DefaultTURNUDPAddr
	}
	if c.TURN.TCPAddr == "" {
		c.TURN.TCPAddr = DefaultTURNTCPAddr
	}
	if c.TURN.TLSAddr == "" {
		c.TURN.TLSAddr = DefaultTURNTLSAddr
	}
	if c.TURN.Realm == "" {
		c.TURN.Realm = DefaultTURNRealm
	}
	return c
}

func (c Config) validate() error {
	var errs []error
	if _, err := net.ResolveUDPAddr("udp", c.UDPAddr); err != nil {
		errs = append(errs, fmt.Errorf("sfu: UDPAddr %q is not a host:port UDP address: %w", c.UDPAddr, err))
	}
	for _, ip := range c.PublicIPs {
		if net.ParseIP(ip) == nil {
			errs = append(errs, fmt.Errorf("sfu: PublicIPs entry %q is not an IP address", ip))
		}
	}
	if c.MaxParticipants < 1 {
		errs = append(errs, fmt.Errorf("sfu: MaxParticipants is %d; set at least 1", c.MaxParticipants))
	}
	if c.Slots < 1 || c.Slots > 16 {
		errs = append(errs, fmt.Errorf("sfu: Slots is %d; set 1 to 16", c.Slots))
	}
	if c.MaxPacketSize < 200 || c.MaxPacketSize > 65535 {
		errs = append(errs, fmt.Errorf("sfu: MaxPacketSize is %d; set 200 to 65535", c.MaxPacketSize))
	}
	for name, d := range map[string]time.Duration{
		"ICEDisconnectedTimeout": c.ICEDisconnectedTimeout, "ICEFailedTimeout": c.ICEFailedTimeout,
		"ICEKeepalive": c.ICEKeepalive, "SelectInterval": c.SelectInterval,
		"SwitchHold": c.SwitchHold, "GatherTimeout": c.GatherTimeout, "EndedMeetingTTL": c.EndedMeetingTTL,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("sfu: %s is %s; set a positive duration", name, d))
		}
	}
	if c.SwitchMargin < 0 || c.SwitchMargin > 127 {
		errs = append(errs, fmt.Errorf("sfu: SwitchMargin is %d; set 0 to 127 dB", c.SwitchMargin))
	}
	if c.UDPBufferSize < 0 {
		errs = append(errs, fmt.Errorf("sfu: UDPBufferSize is %d; set a size in bytes, or 0 for the default", c.UDPBufferSize))
	}
	if c.MaxPacketRate < 1 || c.MaxPacketRate > 10000 {
		errs = append(errs, fmt.Errorf("sfu: MaxPacketRate is %d; set 1 to 10000 packets per second", c.MaxPacketRate))
	}
	if c.SpeakingLevel < 1 || c.SpeakingLevel > 127 {
		errs = append(errs, fmt.Errorf("sfu: SpeakingLevel is %d; set 1 to 127 dB below full scale", c.SpeakingLevel))
	}
	errs = append(errs, c.validateICE()...)
	return errors.Join(errs...)
}

func (c Config) validateICE() []error {
	var errs []error
	for _, o := range c.AllowedOrigins {
		if u, err := url.Parse(o); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			errs = append(errs, fmt.Errorf("sfu: AllowedOrigins entry %q is not an origin; write scheme://host[:port], e.g. https://meet.example.org", o))
		}
	}
	for _, u := range c.ICEServers {
		if !strings.HasPrefix(u, "stun:") && !strings.HasPrefix(u, "turn:") && !strings.HasPrefix(u, "turns:") {
			errs = append(errs, fmt.Errorf("sfu: ICEServers entry %q is not a stun:, turn: or turns: URL", u))
		}
	}
	t := c.TURN
	if !t.Enabled {
		return errs
	}
	if t.UDPAddr == "-" && t.TCPAddr == "-" && t.CertFile == "" {
		errs = append(errs, errors.New("sfu: the TURN server listens nowhere: set TURN.UDPAddr or TURN.TCPAddr"))
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		errs = append(errs, errors.New("sfu: TURN over TLS needs both TURN.CertFile and TURN.KeyFile"))
	}
	if t.RelayIP != "" && net.ParseIP(t.RelayIP) == nil {
		errs = append(errs, fmt.Errorf("sfu: TURN.RelayIP %q is not an IP address", t.RelayIP))
	}
	if t.RelayMinPort < 0 || t.RelayMaxPort > 65535 || t.RelayMinPort > t.RelayMaxPort || (t.RelayMinPort == 0) != (t.RelayMaxPort == 0) {
		errs = append(errs, fmt.Errorf("sfu: TURN relay ports %d-%d: set both, 1 to 65535, min <= max (or neither)", t.RelayMinPort, t.RelayMaxPort))
	}
	return errs
}
