package sfu

import (
	"errors"
	"fmt"
	"net"
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
	// MaxSDPSize caps an offer's body; a real audio offer is a few KiB.
	MaxSDPSize = 64 << 10
)

// Config configures an SFU. The zero value is usable: WithDefaults fills
// every zero field with its default.
type Config struct {
	// UDPAddr is the one UDP address every PeerConnection's media uses.
	// Default DefaultUDPAddr; "127.0.0.1:0" picks a free port (tests).
	UDPAddr string
	// PublicIPs are announced instead of the bound address when Greffier is
	// behind a 1:1 NAT. Default none.
	PublicIPs []string
	// MaxParticipants caps the distinct identities connected to one
	// meeting. Default DefaultMaxParticipants.
	MaxParticipants int
	// Slots is how many speakers a listener hears at once (the loudest
	// ones). Default DefaultSlots.
	Slots int
	// MaxPacketSize is the size of each read buffer. Default
	// DefaultMaxPacketSize.
	MaxPacketSize int
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
		"SwitchHold": c.SwitchHold, "GatherTimeout": c.GatherTimeout,
	} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("sfu: %s is %s; set a positive duration", name, d))
		}
	}
	if c.SwitchMargin < 0 || c.SwitchMargin > 127 {
		errs = append(errs, fmt.Errorf("sfu: SwitchMargin is %d; set 0 to 127 dB", c.SwitchMargin))
	}
	return errors.Join(errs...)
}
