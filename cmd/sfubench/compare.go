package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
)

// comparison is -tap both: the SFU alone and the full server, measured in
// turn on the same machine in the same minutes.
type comparison struct {
	Rounds []pair `json:"rounds"`
	// Medians over the rounds.
	SFUPerReceivedUS    float64 `json:"sfu_us_per_received"`
	FullPerReceivedUS   float64 `json:"full_us_per_received"`
	ExtraPerReceivedUS  float64 `json:"recording_us_per_received"`
	Ratio               float64 `json:"full_over_sfu"`
	ExtraHeapPerTrackKB float64 `json:"recording_heap_per_track_kib"`
}

// pair is one round: the SFU alone, then the full server.
type pair struct {
	SFU  *report `json:"sfu"`
	Full *report `json:"full"`
}

func (p pair) extraUS() float64 { return p.Full.CPUPerReceivedUS - p.SFU.CPUPerReceivedUS }
func (p pair) ratio() float64   { return p.Full.CPUPerReceivedUS / p.SFU.CPUPerReceivedUS }

// extraHeapKiB is what the full server holds per recorded track beyond
// the SFU's own, once every buffer has filled (after the window).
func (p pair) extraHeapKiB() float64 {
	return p.Full.HeapAfterPerParticipantKiB - p.SFU.HeapAfterPerParticipantKiB
}

func runCompare(ctx context.Context, o options, logger *slog.Logger) (*comparison, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	if o.stagesDir != "" {
		if err := os.MkdirAll(o.stagesDir, 0o755); err != nil {
			return nil, err
		}
	}
	prof := func(round int, mode string) string {
		if o.stagesDir == "" {
			return ""
		}
		return filepath.Join(o.stagesDir, fmt.Sprintf("round%d-%s.prof", round+1, mode))
	}
	c := &comparison{}
	for i := range o.rounds {
		var p pair
		var err error
		if p.SFU, err = runOne(ctx, o, tapCount, prof(i, tapCount), logger); err != nil {
			return nil, fmt.Errorf("round %d, SFU alone: %w", i+1, err)
		}
		if p.Full, err = runOne(ctx, o, tapRecord, prof(i, tapRecord), logger); err != nil {
			return nil, fmt.Errorf("round %d, full server: %w", i+1, err)
		}
		fmt.Fprintf(os.Stderr, "sfubench: round %d: SFU %.2f µs, full %.2f µs per received packet (%.2f×)\n",
			i+1, p.SFU.CPUPerReceivedUS, p.Full.CPUPerReceivedUS, p.ratio())
		c.Rounds = append(c.Rounds, p)
	}
	med := func(f func(pair) float64) float64 {
		v := make([]float64, len(c.Rounds))
		for i, p := range c.Rounds {
			v[i] = f(p)
		}
		slices.Sort(v)
		if len(v)%2 == 1 {
			return v[len(v)/2]
		}
		return (v[len(v)/2-1] + v[len(v)/2]) / 2
	}
	c.SFUPerReceivedUS = med(func(p pair) float64 { return p.SFU.CPUPerReceivedUS })
	c.FullPerReceivedUS = med(func(p pair) float64 { return p.Full.CPUPerReceivedUS })
	c.ExtraPerReceivedUS = med(pair.extraUS)
	c.Ratio = med(pair.ratio)
	c.ExtraHeapPerTrackKB = med(pair.extraHeapKiB)
	return c, nil
}

func (c *comparison) print(w io.Writer, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(c)
	}
	for i, p := range c.Rounds {
		fmt.Fprintf(w, "=== round %d: the SFU alone\n", i+1)
		if err := p.SFU.print(w, false); err != nil {
			return err
		}
		fmt.Fprintf(w, "=== round %d: the full server\n", i+1)
		if err := p.Full.print(w, false); err != nil {
			return err
		}
	}
	fmt.Fprintf(w, "=== %d rounds\n", len(c.Rounds))
	for i, p := range c.Rounds {
		fmt.Fprintf(w, "round %d  SFU %6.2f µs  full %6.2f µs per received packet  recording %6.2f µs  ratio %.2f×  recording heap %.1f KiB per track  recorder lost %d dropped %d\n",
			i+1, p.SFU.CPUPerReceivedUS, p.Full.CPUPerReceivedUS, p.extraUS(), p.ratio(), p.extraHeapKiB(),
			p.Full.RecorderLost, p.Full.RecorderDropped)
	}
	_, err := fmt.Fprintf(w, "median   SFU %6.2f µs  full %6.2f µs per received packet  recording %6.2f µs  ratio %.2f×  recording heap %.1f KiB per track\n",
		c.SFUPerReceivedUS, c.FullPerReceivedUS, c.ExtraPerReceivedUS, c.Ratio, c.ExtraHeapPerTrackKB)
	return err
}
