package doctor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
)

// ConsensusCheck finds consensus clusters in trouble (consensus_unhealthy):
// every etcd cluster vigil scrapes, and vigil's own Raft cluster, judged
// from their stored metrics. A cluster without a leader accepts no writes;
// one that keeps electing leaders, fsyncs its log slowly, fails proposals
// or applies far behind what it commits is on its way there. Each scrape
// job is one cluster, and gets one finding naming every problem seen.
type ConsensusCheck struct {
	Metrics storage.Queryable
	// Engine evaluates the queries; the server's one engine, so they are
	// bounded as the API's are.
	Engine promql.QueryEngine
	// Window is the time over which leader changes, failed proposals and
	// fsync durations are measured (15m if 0).
	Window time.Duration
	// LeaderChanges is the number of leader changes within the window
	// from which the cluster is flapping (4 if 0, the threshold of etcd's
	// own alerts).
	LeaderChanges float64
	// SlowSync is the 99th percentile of log fsync durations above which
	// the disk is too slow (10ms if 0: etcd's hardware guidance).
	SlowSync time.Duration
	// PendingProposals and FailedProposals are the proposals queued on a
	// member, and failed within the window, above which they are reported
	// (10 and 10 if 0).
	PendingProposals, FailedProposals float64
	// ApplyLag is the most entries a member may have committed but not
	// applied (1000 if 0; etcd refuses requests from 5000).
	ApplyLag float64
	// LeaderTimeout is how long a vigil follower may go without hearing
	// from the leader before it counts as leaderless (10s if 0).
	LeaderTimeout time.Duration
	Now           func() time.Time
}

// Name implements Check.
func (c ConsensusCheck) Name() string { return "consensus" }

// consensusKind says which series of one kind of cluster tell its state.
type consensusKind struct {
	name string // in subjects: "etcd", "vigil"
	// members selects every member seen in the window ({{w}} stands for
	// it), hasLeader is 1 or 0 per member that answers, by job and
	// instance.
	members, hasLeader string
	// noLeader is the series shown for a member without a leader.
	noLeader string
	// Metric names; pending and failed are empty where not exported.
	changes, syncBucket, pending, failed, commit, applied string
	syncName                                              string
}

func consensusKinds(leaderTimeout time.Duration) []consensusKind {
	return []consensusKind{{
		name:      "etcd",
		members:   `group by (job, instance) (last_over_time(etcd_server_has_leader[{{w}}]))`,
		hasLeader: `max by (job, instance) (etcd_server_has_leader)`,
		noLeader:  "etcd_server_has_leader",
		changes:   "etcd_server_leader_changes_seen_total",
		pending:   "etcd_server_proposals_pending", failed: "etcd_server_proposals_failed_total",
		commit: "etcd_server_proposals_committed_total", applied: "etcd_server_proposals_applied_total",
		syncBucket: "etcd_disk_wal_fsync_duration_seconds_bucket", syncName: "WAL fsync",
	}, {
		name:    "vigil",
		members: `group by (job, instance) (last_over_time(vigil_cluster_term[{{w}}]))`,
		// A follower has a leader as long as it hears from one, so that
		// scraping only followers (each node scraping itself) does not
		// read as a cluster without a leader.
		hasLeader: fmt.Sprintf(`max by (job, instance) (vigil_cluster_leader == 1) or max by (job, instance) (vigil_cluster_last_contact_seconds < bool %g)`,
			leaderTimeout.Seconds()),
		noLeader: "vigil_cluster_last_contact_seconds",
		changes:  "vigil_cluster_leader_changes_total",
		commit:   "vigil_cluster_commit_index", applied: "vigil_cluster_applied_index",
		syncBucket: "vigil_cluster_log_store_duration_seconds_bucket", syncName: "Raft log store",
	}}
}

// ErrConsensusNoEngine is returned by ConsensusCheck.Run when it has
// Metrics to query but no Engine to query them with.
var ErrConsensusNoEngine = errors.New("doctor: ConsensusCheck.Metrics needs an Engine")

type memberKey struct{ job, instance string }

// clusterState is what was read of one cluster, by member (instance).
type clusterState struct {
	members map[string]bool
	down    []string
	// noLeader holds every member's consensusKind.noLeader series, shown
	// for those without a leader.
	hasLeader, noLeader, changes, sync map[string]float64
	pending, failed, commit, applied   map[string]float64
}

// Run implements Check.
func (c ConsensusCheck) Run(ctx context.Context) ([]Finding, error) {
	if c.Metrics == nil {
		return nil, nil
	}
	if c.Engine == nil {
		return nil, ErrConsensusNoEngine
	}
	window := cmp.Or(c.Window, 15*time.Minute)
	now := clockOf(c.Now)()
	w := model.Duration(window).String()
	eval := func(query string) (map[memberKey]float64, error) {
		out := map[memberKey]float64{}
		if query == "" {
			return out, nil
		}
		v, err := sloInstant(ctx, c.Engine, c.Metrics, strings.ReplaceAll(query, "{{w}}", w), now)
		if err != nil {
			return nil, fmt.Errorf("doctor: %s: %w", query, err)
		}
		for _, s := range v {
			out[memberKey{s.Metric.Get(model.JobLabel), s.Metric.Get(model.InstanceLabel)}] = s.F
		}
		return out, nil
	}
	increase := func(metric string) string {
		if metric == "" {
			return ""
		}
		return "increase(" + metric + "[{{w}}])"
	}
	up, err := eval("up")
	if err != nil {
		return nil, err
	}
	var out []Finding
	for _, k := range consensusKinds(cmp.Or(c.LeaderTimeout, 10*time.Second)) {
		members, err := eval(k.members)
		if err != nil {
			return nil, err
		}
		if len(members) == 0 {
			continue // no cluster of this kind
		}
		var all struct{ hasLeader, noLeader, changes, sync, pending, failed, commit, applied map[memberKey]float64 }
		for _, r := range []struct {
			dst   *map[memberKey]float64
			query string
		}{
			{&all.hasLeader, k.hasLeader},
			{&all.noLeader, k.noLeader},
			{&all.changes, increase(k.changes)},
			{&all.sync, "histogram_quantile(0.99, sum by (job, instance, le) (rate(" + k.syncBucket + "[{{w}}])))"},
			{&all.pending, k.pending},
			{&all.failed, increase(k.failed)},
			{&all.commit, k.commit},
			{&all.applied, k.applied},
		} {
			if *r.dst, err = eval(r.query); err != nil {
				return nil, err
			}
		}
		clusters := map[string]*clusterState{}
		for m := range members {
			if clusters[m.job] == nil {
				clusters[m.job] = &clusterState{members: map[string]bool{}}
			}
			clusters[m.job].members[m.instance] = true
		}
		for _, job := range slices.Sorted(maps.Keys(clusters)) {
			s := clusters[job]
			for inst, v := range ofJob(up, job) {
				if v == 0 {
					s.members[inst] = true
					s.down = append(s.down, inst)
				}
			}
			slices.Sort(s.down)
			s.hasLeader, s.noLeader, s.changes, s.sync = ofJob(all.hasLeader, job), ofJob(all.noLeader, job), ofJob(all.changes, job), ofJob(all.sync, job)
			s.pending, s.failed, s.commit, s.applied = ofJob(all.pending, job), ofJob(all.failed, job), ofJob(all.commit, job), ofJob(all.applied, job)
			if f, ok := c.judge(k, job, s, window); ok {
				out = append(out, f)
			}
		}
	}
	return out, nil
}

// ofJob returns the values of the job's members, by instance.
func ofJob(r map[memberKey]float64, job string) map[string]float64 {
	out := map[string]float64{}
	for m, v := range r {
		if m.job == job {
			out[m.instance] = v
		}
	}
	return out
}

// problem is one thing wrong with a cluster.
type problem struct {
	critical   bool
	summary    string
	cause, fix string
	samples    []string
	value      string // its key in Evidence.Values
	n          float64
}

const (
	quorumCause   = "the cluster lost quorum: fewer than a majority of its members run and reach each other, so it cannot elect a leader and accepts no writes"
	quorumFix     = "bring members back until a majority runs (check each member's process, disk and peer port), look for a network partition between them, and compare the member list (etcdctl member list; the peers under cluster: in vigil.yaml) with the members that run"
	isolatedCause = "those members cannot reach the leader: a network partition, a firewall on the peer port, or a wrong advertised peer address"
	isolatedFix   = "check connectivity from those members to the others' peer ports and their advertised peer URLs (etcd --initial-advertise-peer-urls; advertise_addr under cluster: in vigil.yaml)"
	downCause     = "the member does not answer its scrape: its process stopped or its metrics port is unreachable; the cluster runs one failure closer to losing quorum"
	downFix       = "restart the member or fix its metrics listener (read its logs); if it is gone for good, remove it and add a replacement (etcdctl member remove and member add; for vigil, the peers under cluster: in vigil.yaml)"
	flapCause     = "elections keep happening: members miss the leader's heartbeats because of network latency or loss, CPU starvation, or a slow disk stalling the leader"
	flapFix       = "check latency and packet loss between members and their disk latency; if the network is slow by nature, raise etcd's election timeout (--heartbeat-interval near the round-trip time between members, --election-timeout about 10 times that)"
	syncCause     = "the disk under the consensus log is slow or shared: every write waits for its fsync, and slow fsyncs delay heartbeats until followers start elections"
	syncFix       = "put the log on a dedicated SSD (etcd --wal-dir; vigil's data directory), look for noisy neighbours on the same disk (other databases, backups, compaction), and provision IOPS on cloud disks"
	proposalCause = "the cluster cannot commit proposals as fast as they come, or lost its leader while they were in flight"
	proposalFix   = "look at leader changes and fsync latency first; then reduce or spread the client load (large transactions, many writers)"
	lagCause      = "the member applies committed entries more slowly than they commit: a starved CPU, a slow backend disk, or expensive requests"
	lagFix        = "give the member CPU and a faster disk and look for expensive requests (large ranges, many watchers); etcd refuses requests once the gap reaches 5000"
)

func (c ConsensusCheck) judge(k consensusKind, job string, s *clusterState, window time.Duration) (Finding, bool) {
	series := func(metric, inst string, v float64) string {
		return fmt.Sprintf("%s{job=%q, instance=%q} %s", metric, job, inst, formatValue(v))
	}
	var ps []problem
	var answering, leaderless []string
	for _, inst := range slices.Sorted(maps.Keys(s.hasLeader)) {
		answering = append(answering, inst)
		if s.hasLeader[inst] == 0 {
			leaderless = append(leaderless, inst)
		}
	}
	switch {
	case len(answering) == 0 && len(s.down) > 0:
		ps = append(ps, problem{critical: true, cause: quorumCause, fix: quorumFix, value: "members_down", n: float64(len(s.down)),
			summary: fmt.Sprintf("no member answers (up 0 on all %d)", len(s.down))})
	case len(answering) > 0 && len(leaderless) == len(answering):
		p := problem{critical: true, cause: quorumCause, fix: quorumFix, value: "members_without_leader", n: float64(len(leaderless)),
			summary: fmt.Sprintf("no leader: none of the %d members that answer has one", len(answering))}
		for _, inst := range leaderless {
			p.samples = append(p.samples, series(k.noLeader, inst, s.noLeader[inst]))
		}
		ps = append(ps, p)
	case len(leaderless) > 0:
		p := problem{cause: isolatedCause, fix: isolatedFix, value: "members_without_leader", n: float64(len(leaderless)),
			summary: fmt.Sprintf("%s see%s no leader while %d other members do", strings.Join(leaderless, ", "), verbS(len(leaderless)), len(answering)-len(leaderless))}
		for _, inst := range leaderless {
			p.samples = append(p.samples, series(k.noLeader, inst, s.noLeader[inst]))
		}
		ps = append(ps, p)
	}
	if len(s.down) > 0 && len(answering) > 0 {
		p := problem{cause: downCause, fix: downFix, value: "members_down", n: float64(len(s.down)),
			summary: fmt.Sprintf("%s %s down (up 0) of %d members", strings.Join(s.down, ", "), isAre(len(s.down)), len(s.members))}
		for _, inst := range s.down {
			p.samples = append(p.samples, series("up", inst, 0))
		}
		ps = append(ps, p)
	}
	if inst, n := maxOf(s.changes); n >= cmp.Or(c.LeaderChanges, 4) {
		ps = append(ps, problem{cause: flapCause, fix: flapFix, value: "leader_changes", n: math.Round(n),
			summary: fmt.Sprintf("%.0f leader change%s in the %s", n, pluralS(math.Round(n)), lastWindow(window)),
			samples: []string{fmt.Sprintf("increase(%s{job=%q, instance=%q}[%s]) %s", k.changes, job, inst, model.Duration(window), formatValue(n))}})
	}
	slowSync := cmp.Or(c.SlowSync, 10*time.Millisecond).Seconds()
	if p := over(s.sync, slowSync); len(p) > 0 {
		_, worst := maxOf(s.sync)
		ps = append(ps, problem{cause: syncCause, fix: syncFix, value: "sync_p99_seconds", n: math.Round(worst*1e4) / 1e4,
			summary: fmt.Sprintf("%s p99 %s on %s (want under %s)", k.syncName, syncText(worst), strings.Join(p, ", "), syncText(slowSync)),
			samples: samplesOf(p, func(inst string) string {
				return fmt.Sprintf("p99 %s %s on %s", k.syncName, syncText(s.sync[inst]), inst)
			})})
	}
	if p := over(s.pending, cmp.Or(c.PendingProposals, 10)); len(p) > 0 {
		_, n := maxOf(s.pending)
		ps = append(ps, problem{cause: proposalCause, fix: proposalFix, value: "proposals_pending", n: n,
			summary: fmt.Sprintf("%.0f proposals pending on %s", n, strings.Join(p, ", ")),
			samples: samplesOf(p, func(inst string) string { return series(k.pending, inst, s.pending[inst]) })})
	}
	if p := over(s.failed, cmp.Or(c.FailedProposals, 10)); len(p) > 0 {
		var n float64
		for _, v := range s.failed {
			n += v
		}
		ps = append(ps, problem{cause: proposalCause, fix: proposalFix, value: "proposals_failed", n: math.Round(n),
			summary: fmt.Sprintf("%.0f proposals failed in the %s", n, lastWindow(window)),
			samples: samplesOf(p, func(inst string) string {
				return fmt.Sprintf("increase(%s{job=%q, instance=%q}[%s]) %s", k.failed, job, inst, model.Duration(window), formatValue(s.failed[inst]))
			})})
	}
	lag := map[string]float64{}
	for inst, commit := range s.commit {
		if applied, ok := s.applied[inst]; ok {
			lag[inst] = commit - applied
		}
	}
	if p := over(lag, cmp.Or(c.ApplyLag, 1000)); len(p) > 0 {
		_, n := maxOf(lag)
		ps = append(ps, problem{cause: lagCause, fix: lagFix, value: "apply_lag", n: n,
			summary: fmt.Sprintf("%s applied up to %.0f entries fewer than committed", strings.Join(p, ", "), n),
			samples: samplesOf(p, func(inst string) string {
				return fmt.Sprintf("%s %s - %s %s on %s", k.commit, formatValue(s.commit[inst]), k.applied, formatValue(s.applied[inst]), inst)
			})})
	}
	if len(ps) == 0 {
		return Finding{}, false
	}
	f := Finding{Code: "consensus_unhealthy", Severity: Warning, Subject: k.name + " cluster " + job,
		Evidence: Evidence{Values: map[string]float64{"members": float64(len(s.members))}, Window: lastWindow(window)}}
	var summaries, causes, fixes []string
	for _, p := range ps {
		if p.critical {
			f.Severity = Critical
		}
		summaries = append(summaries, p.summary)
		if !slices.Contains(causes, p.cause) {
			causes, fixes = append(causes, p.cause), append(fixes, p.fix)
		}
		f.Evidence.Values[p.value] = p.n
		f.Evidence.Samples = append(f.Evidence.Samples, p.samples...)
	}
	if len(f.Evidence.Samples) > MaxSamples {
		f.Evidence.Samples = f.Evidence.Samples[:MaxSamples]
	}
	f.Evidence.Summary = strings.Join(summaries, "; ")
	f.Cause = strings.Join(causes, "; ")
	f.Fix = strings.Join(fixes, "; ")
	return f, true
}

// maxOf returns the member with the greatest value, NaN ignored.
func maxOf(m map[string]float64) (string, float64) {
	best, n := "", math.Inf(-1)
	for _, inst := range slices.Sorted(maps.Keys(m)) {
		if v := m[inst]; !math.IsNaN(v) && v > n {
			best, n = inst, v
		}
	}
	return best, n
}

// over lists the members whose value exceeds limit, in order.
func over(m map[string]float64, limit float64) []string {
	var out []string
	for _, inst := range slices.Sorted(maps.Keys(m)) {
		if m[inst] > limit {
			out = append(out, inst)
		}
	}
	return out
}

func samplesOf(insts []string, f func(string) string) []string {
	out := make([]string, 0, len(insts))
	for _, inst := range insts {
		out = append(out, f(inst))
	}
	return out
}

// syncText writes a duration in seconds to a tenth of a millisecond: a
// quantile interpolated in a bucket has no more precision than that.
func syncText(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(100 * time.Microsecond).String()
}

func formatValue(v float64) string { return model.SampleValue(v).String() }

func pluralS(n float64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

func verbS(n int) string {
	if n == 1 {
		return "s"
	}
	return ""
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}
