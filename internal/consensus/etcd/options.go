// Package etcd is the consensus backend on an etcd v3 cluster that vigil
// does not run: leadership is an etcd election held by a lease, the log is
// a run of keys appended in transactions that only the current leader's
// election key lets through, and the state is rebuilt on every node by
// watching those keys in revision order.
//
// # Keys under the prefix
//
//	cluster_id          the cluster this prefix belongs to
//	election/<lease>    campaign keys; the oldest is the leader's
//	members/<node id>   one per live node, held by its lease
//	log/<token>-<seq>   one command each, applied in ModRevision order
//	snapshot            the state as of snapshot_rev
//	snapshot_rev        the revision the snapshot covers (zero-padded)
//
// # Fencing token
//
// The token is the CreateRevision of the leader's election key. Revisions
// only grow, and a campaigner leads only once every key created before its
// own is gone, so each leader's token is higher than every earlier
// leader's. A leader's key exists exactly while it leads (a resignation
// deletes it; an expired lease deletes it), so a transaction that compares
// the key's CreateRevision with the token succeeds only for the leader:
// that is both Fence and the guard on every append.
package etcd

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-observability/vigil/internal/consensus"
)

// ErrInvalidOptions: Options that cannot start a node (the error says which
// field and why).
var ErrInvalidOptions = errors.New("etcd: invalid options")

// ErrUnreachable: no endpoint answered within the dial timeout.
var ErrUnreachable = errors.New("etcd: unreachable")

// Options configure one node. Zero values take the defaults below.
type Options struct {
	// Endpoints are the etcd client URLs (http://host:2379 or https://...).
	Endpoints []string
	// Prefix is where this cluster keeps its keys ("/vigil"); two vigil
	// clusters on one etcd need two prefixes.
	Prefix string
	// TLS for the connection to etcd; nil: plain.
	TLS *tls.Config
	// Username and Password, when etcd has authentication on.
	Username, Password string

	// NodeID names this node among the others on the prefix.
	NodeID string
	// Address is this node's API address, reported to the others so that a
	// caller refused by a follower knows where the leader answers.
	Address string
	// ClusterID names the cluster; a prefix that holds another id is
	// refused with consensus.ErrClusterMismatch. Empty: whatever the prefix
	// holds is accepted, and a fresh prefix records "vigil".
	ClusterID string

	// StateMachine is what the log applies to.
	StateMachine consensus.StateMachine
	// Logger receives the node's logs; nil discards.
	Logger *slog.Logger
	// Registerer takes the node's metrics (vigil_cluster_*); nil: none.
	// One node per registry.
	Registerer prometheus.Registerer

	// SessionTTL (5 s, whole seconds, at least 1) is the lease that holds
	// leadership and membership: a leader cut off from etcd is replaced,
	// and learns it is deposed, about this long after its last keepalive.
	SessionTTL time.Duration
	// DialTimeout (5 s) bounds connecting to etcd at start and each
	// request's wait for a connection; an unreachable etcd fails Open
	// after it.
	DialTimeout time.Duration
	// SnapshotThreshold (1024) is how many commands the leader applies
	// before it writes a snapshot and deletes the log keys it covers.
	// The snapshot is one etcd value: etcd refuses requests larger than
	// its --max-request-bytes (1.5 MiB by default).
	SnapshotThreshold int
	// HeartbeatInterval (1 s) is how often a node refreshes its member key
	// with its applied index.
	HeartbeatInterval time.Duration
}

const defaultClusterID = "vigil"

func (o *Options) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.SessionTTL, 5*time.Second)
	def(&o.DialTimeout, 5*time.Second)
	def(&o.HeartbeatInterval, time.Second)
	if o.SnapshotThreshold == 0 {
		o.SnapshotThreshold = 1024
	}
	if o.Prefix == "" {
		o.Prefix = "/vigil"
	}
	// Keys are built as prefix + "/" + name; a trailing slash would double.
	o.Prefix = strings.TrimRight(o.Prefix, "/")
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidOptions, fmt.Sprintf(format, args...))
}

// validate checks what can be checked without etcd; it runs after
// setDefaults.
func (o *Options) validate() error {
	switch {
	case len(o.Endpoints) == 0:
		return invalid("no endpoints")
	case o.NodeID == "":
		return invalid("node_id is empty")
	case strings.Contains(o.NodeID, "/"):
		// The id is a key segment under members/.
		return invalid("node_id %q contains a slash", o.NodeID)
	case o.Address == "":
		return invalid("address is empty: the other nodes send the leader's callers there")
	case o.StateMachine == nil:
		return invalid("no state machine")
	case o.Prefix == "":
		return invalid("prefix %q names the root of the keyspace; use a path such as /vigil", "/")
	case o.SessionTTL < time.Second:
		return invalid("session ttl %s is under etcd's one-second lease granularity", o.SessionTTL)
	case o.SnapshotThreshold < 0:
		return invalid("snapshot threshold %d is negative", o.SnapshotThreshold)
	}
	for i, e := range o.Endpoints {
		if strings.TrimSpace(e) == "" {
			return invalid("endpoint %d is empty", i)
		}
	}
	return nil
}
