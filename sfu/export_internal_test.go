package sfu

import "github.com/pion/webrtc/v4"

// SetDTLSSettings has change alter the settings of every connection s
// makes from now on, after its own: the package's tests make handshakes
// the SFU derives no keys from with it.
func SetDTLSSettings(s *SFU, change func(*webrtc.SettingEngine)) {
	s.mu.Lock()
	s.dtlsSettings = change
	s.mu.Unlock()
}
