package diarize

import (
	"math"
)

const (
	// silenceDB is the level given to digital silence, whose log is -inf.
	silenceDB = -100
	// dcPole sets the DC-blocking high-pass at about 13 Hz: hum and offsets
	// are not voice.
	dcPole = 0.995
	// floorBlocks is how many sub-windows the noise window is split into
	// for minimum tracking.
	floorBlocks = 8
	// floorRiseDBPerFrame caps how fast the floor may rise, 20 dB/s: at
	// the start of a track, before any pause was heard, the floor must not
	// leap to the level of the speech itself; yet steady noise from the
	// start must become background within a second or two.
	floorRiseDBPerFrame = 20.0 / framesPerSecond
)

// levelMeter measures the level of each frame after a DC blocker.
type levelMeter struct {
	prevIn, prevOut float64
}

// level returns the frame's RMS level in dBFS (silenceDB for zeros) and
// whether the frame is all zeros, as gaps in a recording are.
func (m *levelMeter) level(frame []int16) (db float64, zero bool) {
	// A gap or a muted microphone after the filter has died down: the
	// filter would only decay further, well under the -100 dB a frame of
	// zeros reports anyway, so skip it.
	if m.prevIn == 0 && math.Abs(m.prevOut) < 0.5 && allZero(frame) {
		m.prevOut = 0
		return silenceDB, true
	}
	var sum float64
	zero = true
	x1, y1 := m.prevIn, m.prevOut
	for _, s := range frame {
		if s != 0 {
			zero = false
		}
		x := float64(s)
		y := x - x1 + dcPole*y1
		x1, y1 = x, y
		sum += y * y
	}
	m.prevIn, m.prevOut = x1, y1
	if len(frame) == 0 {
		return silenceDB, true
	}
	ms := sum / float64(len(frame)) / (32768.0 * 32768.0)
	if ms <= 1e-10 {
		return silenceDB, zero
	}
	return max(10*math.Log10(ms), silenceDB), zero
}

func allZero(frame []int16) bool {
	for _, s := range frame {
		if s != 0 {
			return false
		}
	}
	return true
}

// noiseFloor estimates background level as the minimum frame level over a
// sliding window (kept as per-block minima, so each frame costs a few
// comparisons and nothing is allocated), rising at most floorRiseDBPerFrame.
type noiseFloor struct {
	blockLen int
	mins     [floorBlocks]float64
	filled   int
	next     int
	cur      float64
	curLen   int
	floor    float64
}

// newNoiseFloor starts the floor at initial, where the threshold it gives
// equals the absolute minimum level.
func newNoiseFloor(windowFrames int, initial float64) noiseFloor {
	return noiseFloor{
		blockLen: max(1, windowFrames/floorBlocks),
		cur:      math.Inf(1),
		floor:    initial,
	}
}

// push adds one frame's level.
func (n *noiseFloor) push(db float64) {
	n.cur = min(n.cur, db)
	n.curLen++
	m := n.cur
	for _, b := range n.mins[:n.filled] {
		m = min(m, b)
	}
	if n.curLen == n.blockLen {
		n.mins[n.next] = n.cur
		n.next = (n.next + 1) % floorBlocks
		n.filled = min(n.filled+1, floorBlocks)
		n.cur, n.curLen = math.Inf(1), 0
	}
	n.floor = min(m, n.floor+floorRiseDBPerFrame)
}

// value is the floor as of the last frame pushed.
func (n *noiseFloor) value() float64 { return n.floor }
