package jobs

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver"
	"github.com/riverqueue/river/rivertype"

	"github.com/greffier/greffier/internal/store"
)

// DefaultNodeTimeout is Config.NodeTimeout's default.
const DefaultNodeTimeout = 10 * time.Second

// nodesForgottenAfter is how long a silent node's row is kept, for a look
// at which processes ran lately.
const nodesForgottenAfter = 24 * time.Hour

// River marks the jobs a process works as running, with the process's
// client ID (here the node's id) last in attempted_by, and only rescues them
// once they have run longer than RescueStuckJobsAfter: hours, since a
// transcription may take that long. A process killed mid-job would hold its
// jobs that long. So every process is a node whose heartbeat is in the
// database, and the running jobs of a node that stopped beating are made
// available again at once:
//
//   - on embedded SQLite, one process owns the queue: every job running
//     when it starts is an orphan of its previous life, rescued before
//     River starts;
//   - on Postgres, other nodes may be alive and working: a job is rescued
//     when the node that holds it has been silent for NodeTimeout, by every
//     node's heartbeat loop (the rescue is conditional on the job still
//     being the one that was looked at, so two rescuers do not collide).
//
// River's own rescuer stays as the backstop for a live node's job that
// outlived its worker's timeout.

// rescueOrphans makes the running jobs held by dead nodes available again,
// and returns how many it rescued.
func (p *Pipeline) rescueOrphans(ctx context.Context) (int, error) {
	alive := map[string]bool{p.nodeID: true}
	if p.store.Dialect() != store.SQLite {
		nodes, err := p.store.Nodes(ctx, time.Now().Add(-p.cfg.NodeTimeout))
		if err != nil {
			return 0, err
		}
		for _, n := range nodes {
			alive[n.ID] = true
		}
	}
	// Only jobs attempted before this instant are touched: one that a
	// live node takes up after the list was read stays its own.
	horizon := time.Now()
	var orphans []*rivertype.JobRow
	params := river.NewJobListParams().States(rivertype.JobStateRunning).First(1000)
	for {
		res, err := p.client.JobList(ctx, params)
		if err != nil {
			return 0, fmt.Errorf("list running jobs: %w", err)
		}
		for _, j := range res.Jobs {
			if n := len(j.AttemptedBy); n == 0 || !alive[j.AttemptedBy[n-1]] {
				orphans = append(orphans, j)
			}
		}
		if len(res.Jobs) < 1000 {
			break
		}
		params = params.After(res.LastCursor)
	}
	if len(orphans) == 0 {
		return 0, nil
	}
	now := time.Now().UTC()
	rp := &riverdriver.JobRescueManyParams{StuckHorizon: horizon}
	for _, j := range orphans {
		holder := "an unknown process"
		if n := len(j.AttemptedBy); n > 0 {
			holder = "node " + j.AttemptedBy[n-1]
		}
		e, err := json.Marshal(rivertype.AttemptError{At: now, Attempt: j.Attempt,
			Error: holder + " stopped while it ran this job"})
		if err != nil {
			return 0, fmt.Errorf("rescue job %d: %w", j.ID, err)
		}
		state, finalized := rivertype.JobStateAvailable, (*time.Time)(nil)
		if j.Attempt >= j.MaxAttempts {
			// As River's own rescuer does: a job that has had all its
			// attempts (perhaps each killing its process) is not run
			// again. The sweep that follows marks its unit failed.
			state, finalized = rivertype.JobStateDiscarded, &now
			p.log.Error("job held by a stopped node had no attempt left", "job", j.ID, "kind", j.Kind)
		}
		rp.ID = append(rp.ID, j.ID)
		rp.Error = append(rp.Error, e)
		rp.FinalizedAt = append(rp.FinalizedAt, finalized)
		rp.ScheduledAt = append(rp.ScheduledAt, now)
		rp.State = append(rp.State, string(state))
	}
	if _, err := p.driver.GetExecutor().JobRescueMany(ctx, rp); err != nil {
		return 0, fmt.Errorf("rescue jobs of stopped nodes: %w", err)
	}
	p.log.Info("took up the jobs of stopped nodes", "jobs", len(orphans))
	return len(orphans), nil
}

// beat is one round of the heartbeat loop: this node is alive, the jobs of
// nodes that are not are rescued (Postgres), and the units of jobs that
// will not run again are marked failed (both).
func (p *Pipeline) beat(ctx context.Context) error {
	// On SQLite too, so that GET /v1/nodes shows the one node's load.
	if err := p.store.Heartbeat(ctx, p.node()); err != nil {
		return err
	}
	if p.store.Dialect() != store.SQLite {
		if _, err := p.rescueOrphans(ctx); err != nil {
			return err
		}
	}
	if err := p.store.ForgetNodes(ctx, "", time.Now().Add(-nodesForgottenAfter)); err != nil {
		return err
	}
	_, err := p.settleDiscarded(ctx)
	return err
}

// node is this process's row in the nodes table.
func (p *Pipeline) node() store.Node {
	var n store.Node
	if p.cfg.Node != nil {
		n = p.cfg.Node()
	}
	n.ID = p.nodeID
	return n
}

// runHeartbeats beats every fifth of NodeTimeout until ctx ends.
func (p *Pipeline) runHeartbeats(ctx context.Context) {
	t := time.NewTicker(p.cfg.NodeTimeout / 5)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.beat(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("node heartbeat", "node", p.nodeID, "err", err)
		}
	}
}
