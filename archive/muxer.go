package archive

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/greffier/greffier/internal/audio"
)

const (
	// maxClusterMS closes a cluster after 5 s of meeting time: short enough
	// for quick seeks through Cues, long enough that Cues stay small (720
	// points an hour). Matroska's own limit is 32.767 s of int16 block time.
	maxClusterMS = 5000
	// maxClusterBytes bounds the one cluster held in memory: 5 s of 150
	// speakers at 32 kbit/s is about 3 MiB.
	maxClusterBytes = 8 << 20
	// seekHeadReserve is the space after the Segment header kept for the
	// SeekHead, written last when every position is known (four entries
	// take under 100 bytes).
	seekHeadReserve = 128
	// segmentSizeLen is the fixed vint length of the Segment size, patched
	// when the file is complete.
	segmentSizeLen  = 8
	writeBufferSize = 64 << 10
	muxingApp       = "greffier archive"
)

// muxTrack is one output track.
type muxTrack struct {
	number  uint64
	name    string
	opus    opusTrack
	lastMS  int64 // start of the last block written; -1 before any
	lastSeq int   // the cursor that wrote it
	endMS   int64 // end of the last block's audio
	inCue   int   // index of the last cue point that lists this track; -1 before any
}

// cuePoint indexes one cluster: its time, position and the tracks with a
// block in it (cueTracks[first:first+n]).
type cuePoint struct {
	ms       int64
	pos      int64 // relative to the Segment's data, as Matroska wants
	first, n int
}

// muxer writes a multi-track Opus WebM on the meeting clock: EBML header,
// a Segment of known size holding SeekHead, Info (with Duration), Tracks,
// Clusters (each of known size, built in memory), Cues and per-track Tags
// (DURATION, as ffmpeg and mkvmerge write it). ebml-go's block writer does
// not fit: it rebases time on the first block (the meeting clock would be
// lost), cannot write Language or Tags, runs a goroutine and allocates
// per frame.
type muxer struct {
	w       io.WriteSeeker
	bw      *bufio.Writer
	off     int64 // bytes written so far, from the file's start
	segData int64 // file offset of the Segment's data
	pos     struct{ seekHead, info, tracks, cues, tags, duration int64 }

	tracks    []muxTrack
	open      bool   // a cluster is being built
	cluster   []byte // the open cluster's data, reused from one to the next
	clusterMS int64
	cues      []cuePoint
	cueTracks []uint64
	scratch   []byte
	endMS     int64
}

func newMuxer(w io.WriteSeeker, tracks []muxTrack) *muxer {
	return &muxer{w: w, bw: bufio.NewWriterSize(w, writeBufferSize), tracks: tracks, endMS: 0}
}

func (m *muxer) write(b []byte) error {
	n, err := m.bw.Write(b)
	m.off += int64(n)
	if err != nil {
		return fmt.Errorf("write webm: %w", err)
	}
	return nil
}

// start writes everything before the first cluster.
func (m *muxer) start() error {
	b := audio.AppendWebMHeader(nil)
	b = audio.AppendID(b, audio.IDSegment)
	b = audio.AppendSizeN(b, 0, segmentSizeLen) // patched by finish
	m.segData = int64(len(b))

	m.pos.seekHead = int64(len(b))
	b = audio.AppendVoid(b, seekHeadReserve)

	var info []byte
	info = audio.AppendUint(info, audio.IDTimecodeScale, 1_000_000) // 1 ms, as the recorder writes
	info = audio.AppendString(info, audio.IDMuxingApp, muxingApp)
	info = audio.AppendString(info, audio.IDWritingApp, muxingApp)
	info = audio.AppendFloat(info, audio.IDDuration, 0) // patched by finish
	m.pos.info = int64(len(b))
	b = audio.AppendMaster(b, audio.IDInfo, info)
	m.pos.duration = int64(len(b)) - 8

	var tracks []byte
	for _, t := range m.tracks {
		var e []byte
		e = audio.AppendUint(e, audio.IDTrackNumber, t.number)
		e = audio.AppendUint(e, audio.IDTrackUID, t.number)
		e = audio.AppendUint(e, audio.IDTrackType, 2) // audio
		// Matroska's FlagDefault defaults to 1: left out, every speaker is
		// "the" default track, and players that honour it pick the first
		// and never play the others. Only the first is marked default,
		// so a player has one track to start with and offers the rest.
		e = audio.AppendUint(e, audio.IDFlagDefault, boolUint(t.number == 1))
		e = audio.AppendString(e, audio.IDName, t.name)
		e = audio.AppendString(e, audio.IDLanguage, "und") // Matroska's default is "eng"
		e = audio.AppendString(e, audio.IDCodecID, "A_OPUS")
		if len(t.opus.codecPrivate) > 0 {
			e = audio.AppendBytes(e, audio.IDCodecPrivate, t.opus.codecPrivate)
		}
		e = audio.AppendUint(e, audio.IDCodecDelay, uint64(t.opus.codecDelayNS))
		e = audio.AppendUint(e, audio.IDSeekPreRoll, uint64(t.opus.seekPreRoll))
		var a []byte
		a = audio.AppendFloat(a, audio.IDSampling, 48000)
		a = audio.AppendUint(a, audio.IDChannels, t.opus.channels)
		e = audio.AppendMaster(e, audio.IDAudio, a)
		tracks = audio.AppendMaster(tracks, audio.IDTrackEntry, e)
	}
	m.pos.tracks = int64(len(b))
	b = audio.AppendMaster(b, audio.IDTracks, tracks)
	return m.write(b)
}

// block adds one block of track k (0-based) at ms on the meeting clock.
// Blocks must come in time order across all tracks.
func (m *muxer) block(k int, ms int64, blk *block) error {
	t := &m.tracks[k]
	if m.open && (ms-m.clusterMS > maxClusterMS || len(m.cluster) > maxClusterBytes) {
		if err := m.flushCluster(); err != nil {
			return err
		}
	}
	if !m.open {
		m.open = true
		m.clusterMS = ms
		m.cluster = audio.AppendUint(m.cluster[:0], audio.IDTimecode, uint64(ms))
		m.cues = append(m.cues, cuePoint{ms: ms, pos: m.off - m.segData, first: len(m.cueTracks)})
	}
	if c := len(m.cues) - 1; t.inCue != c {
		t.inCue = c
		m.cueTracks = append(m.cueTracks, t.number)
		m.cues[c].n++
	}
	rel := ms - m.clusterMS
	data := blk.data()
	// Opus packets are all keyframes; lacing is kept so laced input is
	// copied byte for byte.
	lacing := blk.flags & 0x06
	hdrLen := audio.SizeLen(t.number) + 3
	if blk.discardNS > 0 {
		// A trimmed last packet keeps its DiscardPadding, which only a
		// BlockGroup can carry.
		dp := audio.AppendInt(m.scratch[:0], audio.IDDiscardPadding, blk.discardNS)
		blockLen := hdrLen + len(data)
		m.cluster = audio.AppendID(m.cluster, audio.IDBlockGroup)
		m.cluster = audio.AppendSize(m.cluster, uint64(1+audio.SizeLen(uint64(blockLen))+blockLen+len(dp)))
		m.cluster = audio.AppendID(m.cluster, audio.IDBlock)
		m.cluster = audio.AppendSize(m.cluster, uint64(blockLen))
		m.cluster = audio.AppendVint(m.cluster, t.number)
		m.cluster = binary.BigEndian.AppendUint16(m.cluster, uint16(int16(rel)))
		m.cluster = append(m.cluster, lacing)
		m.cluster = append(m.cluster, data...)
		m.cluster = append(m.cluster, dp...)
		m.scratch = dp
	} else {
		m.cluster = audio.AppendID(m.cluster, audio.IDSimpleBlock)
		m.cluster = audio.AppendSize(m.cluster, uint64(hdrLen+len(data)))
		m.cluster = audio.AppendVint(m.cluster, t.number)
		m.cluster = binary.BigEndian.AppendUint16(m.cluster, uint16(int16(rel)))
		m.cluster = append(m.cluster, 0x80|lacing)
		m.cluster = append(m.cluster, data...)
	}
	t.lastMS = ms
	end := ms + (blk.samples48()+47)/48
	t.endMS = max(t.endMS, end)
	m.endMS = max(m.endMS, end)
	return nil
}

func (m *muxer) flushCluster() error {
	if !m.open {
		return nil
	}
	var hdr [12]byte
	h := audio.AppendID(hdr[:0], audio.IDCluster)
	h = audio.AppendSize(h, uint64(len(m.cluster)))
	if err := m.write(h); err != nil {
		return err
	}
	if err := m.write(m.cluster); err != nil {
		return err
	}
	m.cluster = m.cluster[:0]
	m.open = false
	return nil
}

// finish writes the last cluster, Cues and Tags, then fills in the sizes
// and positions reserved at the start. It leaves w at the end of the file.
func (m *muxer) finish() error {
	if err := m.flushCluster(); err != nil {
		return err
	}

	if len(m.cues) > 0 {
		var cues []byte
		for _, c := range m.cues {
			p := audio.AppendUint(m.scratch[:0], audio.IDCueTime, uint64(c.ms))
			for _, num := range m.cueTracks[c.first : c.first+c.n] {
				var tp []byte
				tp = audio.AppendUint(tp, audio.IDCueTrack, num)
				tp = audio.AppendUint(tp, audio.IDCueClusterPosition, uint64(c.pos))
				p = audio.AppendMaster(p, audio.IDCueTrackPositions, tp)
			}
			cues = audio.AppendMaster(cues, audio.IDCuePoint, p)
			m.scratch = p
		}
		m.pos.cues = m.off
		if err := m.write(audio.AppendMaster(nil, audio.IDCues, cues)); err != nil {
			return err
		}
	}

	var tags []byte
	for _, t := range m.tracks {
		var tg, tgt, st []byte
		tgt = audio.AppendUint(tgt, audio.IDTagTrackUID, t.number)
		st = audio.AppendString(st, audio.IDTagName, "DURATION")
		st = audio.AppendString(st, audio.IDTagString, tagDuration(time.Duration(t.endMS)*time.Millisecond))
		tg = audio.AppendMaster(tg, audio.IDTargets, tgt)
		tg = audio.AppendMaster(tg, audio.IDSimpleTag, st)
		tags = audio.AppendMaster(tags, audio.IDTag, tg)
	}
	m.pos.tags = m.off
	if err := m.write(audio.AppendMaster(nil, audio.IDTags, tags)); err != nil {
		return err
	}
	if err := m.bw.Flush(); err != nil {
		return fmt.Errorf("write webm: %w", err)
	}
	return m.patch()
}

// patch fills in the Segment size, Duration and SeekHead.
func (m *muxer) patch() error {
	size := audio.AppendSizeN(nil, uint64(m.off-m.segData), segmentSizeLen)
	if err := m.writeAt(size, m.segData-segmentSizeLen); err != nil {
		return err
	}
	var d [8]byte
	binary.BigEndian.PutUint64(d[:], math.Float64bits(float64(m.endMS)))
	if err := m.writeAt(d[:], m.pos.duration); err != nil {
		return err
	}
	var seeks []byte
	for _, s := range []struct {
		id  uint32
		pos int64
	}{{audio.IDInfo, m.pos.info}, {audio.IDTracks, m.pos.tracks}, {audio.IDCues, m.pos.cues}, {audio.IDTags, m.pos.tags}} {
		if s.pos == 0 {
			continue
		}
		var e []byte
		e = audio.AppendBytes(e, audio.IDSeekID, audio.AppendID(nil, s.id))
		e = audio.AppendUint(e, audio.IDSeekPosition, uint64(s.pos-m.segData))
		seeks = audio.AppendMaster(seeks, audio.IDSeek, e)
	}
	sh := audio.AppendMaster(nil, audio.IDSeekHead, seeks)
	sh = audio.AppendVoid(sh, seekHeadReserve-len(sh))
	if err := m.writeAt(sh, m.pos.seekHead); err != nil {
		return err
	}
	if _, err := m.w.Seek(m.off, io.SeekStart); err != nil {
		return fmt.Errorf("seek to the end of the webm: %w", err)
	}
	return nil
}

func (m *muxer) writeAt(b []byte, off int64) error {
	if _, err := m.w.Seek(off, io.SeekStart); err != nil {
		return fmt.Errorf("seek webm to %d: %w", off, err)
	}
	if _, err := m.w.Write(b); err != nil {
		return fmt.Errorf("patch webm at %d: %w", off, err)
	}
	return nil
}

// tagDuration formats d as Matroska's DURATION tag: HH:MM:SS.nnnnnnnnn.
func tagDuration(d time.Duration) string {
	h := d / time.Hour
	d -= h * time.Hour
	mi := d / time.Minute
	d -= mi * time.Minute
	s := d / time.Second
	d -= s * time.Second
	return fmt.Sprintf("%02d:%02d:%02d.%09d", h, mi, s, d)
}

func boolUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}
