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
package sfu
