package raft

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	hraft "github.com/hashicorp/raft"

	"github.com/vigil-observability/vigil/internal/consensus"
)

const clusterIDFile = "cluster_id"

// derivedClusterID names a cluster by its peer set, so that nodes given the
// same peers agree on it without being told, and a data directory moved to
// a node of another cluster is recognised.
func derivedClusterID(peers []consensus.Peer) string {
	lines := make([]string, 0, len(peers))
	for _, p := range peers {
		lines = append(lines, p.ID+"="+p.Address)
	}
	slices.Sort(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return "peers-" + hex.EncodeToString(sum[:8])
}

func readClusterID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterIDFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read cluster id: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func writeClusterID(dir, id string) error {
	tmp := filepath.Join(dir, clusterIDFile+".tmp")
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("write cluster id: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, clusterIDFile)); err != nil {
		return fmt.Errorf("write cluster id: %w", err)
	}
	return nil
}

// checkClusterID refuses a data directory that holds another cluster's
// state, and records which cluster a fresh one belongs to.
//
// With an explicit ClusterID the stored id must equal it. Without one, the id
// is derived from Peers; but members change (join, remove) and the operator
// then edits the peers list, so a stored id that differs is still accepted
// when Peers equal the membership the log itself holds now, and the stored
// id follows the new list.
func checkClusterID(o *Options, hasState bool, logs hraft.LogStore, snaps hraft.SnapshotStore) error {
	stored, err := readClusterID(o.DataDir)
	if err != nil {
		return err
	}
	want := o.ClusterID
	if want == "" && len(o.Peers) > 0 {
		want = derivedClusterID(o.Peers)
	}
	if !hasState || stored == "" {
		// Nothing to protect yet, or a directory written before ids were
		// kept (a joined node without an explicit id): record ours.
		if want == "" {
			return nil
		}
		if hasState && o.ClusterID == "" && len(o.Peers) > 0 {
			if err := sameMembers(o, logs, snaps); err != nil {
				return err
			}
		}
		return writeClusterID(o.DataDir, want)
	}
	if stored == want || want == "" {
		warnIfMembersDiffer(o, logs, snaps)
		return nil
	}
	if o.ClusterID != "" {
		return fmt.Errorf("%w: %s holds cluster %q, this node is configured for cluster %q",
			consensus.ErrClusterMismatch, o.DataDir, stored, o.ClusterID)
	}
	if err := sameMembers(o, logs, snaps); err != nil {
		return err
	}
	return writeClusterID(o.DataDir, want)
}

// sameMembers compares Peers with the latest membership in the log (or in
// the newest snapshot when the log has been compacted past it).
func sameMembers(o *Options, logs hraft.LogStore, snaps hraft.SnapshotStore) error {
	cfg, err := latestConfiguration(logs, snaps)
	if err != nil {
		return err
	}
	got := make([]string, 0, len(cfg.Servers))
	for _, s := range cfg.Servers {
		got = append(got, string(s.ID)+"="+string(s.Address))
	}
	want := make([]string, 0, len(o.Peers))
	for _, p := range o.Peers {
		want = append(want, p.ID+"="+p.Address)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%w: %s holds a cluster of [%s], this node is configured with peers [%s]",
			consensus.ErrClusterMismatch, o.DataDir, strings.Join(got, " "), strings.Join(want, " "))
	}
	return nil
}

func latestConfiguration(logs hraft.LogStore, snaps hraft.SnapshotStore) (hraft.Configuration, error) {
	first, err := logs.FirstIndex()
	if err != nil {
		return hraft.Configuration{}, fmt.Errorf("read log: %w", err)
	}
	last, err := logs.LastIndex()
	if err != nil {
		return hraft.Configuration{}, fmt.Errorf("read log: %w", err)
	}
	for i := last; i >= first && i > 0; i-- {
		var l hraft.Log
		if err := logs.GetLog(i, &l); err != nil {
			return hraft.Configuration{}, fmt.Errorf("read log entry %d: %w", i, err)
		}
		if l.Type == hraft.LogConfiguration {
			return hraft.DecodeConfiguration(l.Data), nil
		}
	}
	metas, err := snaps.List()
	if err != nil {
		return hraft.Configuration{}, fmt.Errorf("list snapshots: %w", err)
	}
	if len(metas) == 0 {
		return hraft.Configuration{}, nil
	}
	return metas[0].Configuration, nil
}

// warnIfMembersDiffer says so when the peers given are not the membership
// the log holds (a join or remove not yet copied into the configuration):
// raft goes by the log, and the configured list will mislead whoever reads it.
func warnIfMembersDiffer(o *Options, logs hraft.LogStore, snaps hraft.SnapshotStore) {
	if len(o.Peers) == 0 {
		return
	}
	if err := sameMembers(o, logs, snaps); err != nil {
		o.Logger.Warn("the peers configured differ from the cluster's membership; the membership in the log is used", "err", err)
	}
}
