// Package sfu is Greffier's media heart: it answers WHIP (publish) and WHEP
// (listen) offers, terminates every participant's WebRTC connection on one
// shared UDP port, hands every received RTP packet to a Tap (the recorder)
// before any forwarding decision, and forwards to each listener the N
// loudest other speakers on N fixed slots.
//
// It knows nothing of recording, storage or the database: meetings are
// reached through the small Meetings interface and recordings through Tap,
// both implemented elsewhere and adapted in cmd/greffier. It must not import
// recorder, internal/store, internal/blob, jobs or api.
//
// # Optional seams
//
// A TrackTap that also implements SenderReportTap gets the publisher's RTCP
// sender reports (NTP time ↔ RTP timestamp). Config.Observer, when set, is
// told of joins, leaves and speaking turns (Event); the SFU stores nothing.
//
// # Media path
//
// pion terminates ICE, DTLS and RTCP; RTP does not go through it. The
// media port is one UDP socket per core (SO_REUSEPORT on Linux; the
// kernel keeps each peer on one of them), each read by its own goroutine
// (mediaconn.go). That goroutine recognises a publisher's RTP by its
// source address, decrypts it with that connection's SRTP keys, hands it
// to the Tap and fans it out, encrypting each copy with its listener's
// keys into its socket's send batch, all without a hand-off or an
// allocation (media.go); the rest of what it reads goes to pion.
// The keys come from pion's public DTLS hooks, the SFU being the DTLS
// server (dtlskeys.go): offers must say a=setup:actpass or active, as
// every browser's do. A session whose handshake gives no keys the SFU can
// derive (a pion that changed how it shows the handshake: another DTLS
// version, resumption) is not dropped: its RTP goes through pion's own
// SRTP path, read through pion's track and sent through its track writer
// (slower; Stats.PionSRTPSessions counts them, and a test fails if a pion
// peer's session takes it). TrackTap.OpenTrack and Close run on the
// session's goroutines; packets wait in order while a tap opens
// (ssrctap.go). Its throughput is in docs/benchmarks.md.
// As RTP never reaches pion's ICE
// agent, a peer's liveness rests on STUN: the agent checks the selected
// pair every ICEKeepalive, well inside ICEDisconnectedTimeout. A track
// moves to a new SSRC only once its current one has been silent a second;
// until then another SSRC is dropped and counted (Stats.DroppedSRTP).
//
// # RTCP
//
// The SFU sends its own reports every second (rtcp.go): receiver reports
// to every publisher (loss, jitter, LSR/DLSR from its sender reports) and
// sender reports on every slot, from what it actually received and sent.
// Listeners' reports are about the SFU's own slot streams and stop here:
// a publisher's bitrate is the browser's business, and forwarding one
// listener's loss to a speaker heard by 149 others would only mislead it.
//
// There is no NACK for audio, by choice: browsers do not offer it for
// Opus, a 20 ms packet retransmitted a round trip later misses its jitter
// buffer's deadline, and Opus has in-band FEC (useinbandfec=1, offered
// here) that recovers a lost packet from the next one. Forwarding keeps
// upstream gaps as sequence-number gaps so the listener's FEC and
// concealment can do their work.
//
// # Sending
//
// A speaker's packet fans out to up to every listener at once, so the
// reader corks its socket's sender for the fan-out and the copies leave in
// sendmmsg calls of up to 64 (Linux; elsewhere one write each). pion's
// writes (ICE, DTLS, RTCP) leave at once through the first socket: every
// socket has the same address and port.
//
// # One session per identity and kind
//
// A new WHIP session of an identity in a meeting replaces (closes) the
// identity's older WHIP session, and a new WHEP session its older WHEP
// session, as LiveKit replaces a participant who connects again: a leaked
// join link cannot publish or listen beside its owner unnoticed, and a
// client that reconnects without DELETE leaves nothing behind. The older
// session's tracks end like any other (TrackTap.Close: the recording is
// stored). A participant's one WHIP and one WHEP session live side by
// side. Listening is replaced too, not allowed twice: two listeners of one
// identity are the owner and whoever has the link, and replacing shows
// the owner (whose audio stops) that someone else used it. Disconnect
// closes an identity's sessions, or those of one token, when the owner
// revokes it; Meetings.Join refuses revoked tokens (401 token_revoked).
//
// # Limits
//
// Participants per meeting (Config.MaxParticipants, HTTP 503
// meeting_full), audio sections per offer (MaxPublishSections for WHIP,
// MaxListenSections for WHEP, MaxOfferSections of any kind: 400
// too_many_sections), offers without Opus (no_opus_audio: 406 for WHIP,
// 422 for WHEP, whose draft keeps 406 for a counter-offer), packet size
// (Config.MaxPacketSize) and packet rate per publisher
// (Config.MaxPacketRate): oversized and excess packets are dropped before
// the Tap, counted in Stats and logged at the 1st, 2nd, 4th, 8th... drop.
//
// # ICE restarts and trickle
//
// PATCH on a session URL (RFC 9725, body application/trickle-ice-sdpfrag)
// with new ICE credentials and If-Match: "*" restarts ICE: the answer
// fragment carries the SFU's new credentials and candidates (and a new
// ETag), while DTLS, the tracks and the recording carry on. A fragment with
// the current credentials adds trickled candidates (204). Answers to POST
// carry every SFU candidate, so the SFU never trickles itself. A client
// that cannot restart DELETEs (or is timed out after ICEFailedTimeout) and
// POSTs a new offer: the meeting records the same speaker rejoining.
// Answers and restart fragments carry component-1 candidates only
// (rtcp-mux is mandatory), a restart's those of the transports the
// client's fragment lists or, when it lists none, of the one in use.
//
// # Any client, any network
//
// Every WHIP/WHEP URL answers OPTIONS before any token check, with CORS
// headers for Config.AllowedOrigins (default any: tokens travel in a
// header, never a cookie); POST on a session URL is 405; WHEP answers are
// sendonly. Config.ICETCP accepts ICE over TCP on the media port's number:
// such a session (its selected pair is TCP when DTLS keys it) takes pion's
// own SRTP path, as the media path reads and writes UDP only. Config.TURN
// runs an embedded TURN server (turn.go) that relays only to this host;
// its credentials, and those of Config.ICEServers, derive from the join
// token (iceservers.go) and reach clients in Link headers (RFC 9725
// section 4.6) and from ICEServersHandler.
package sfu
