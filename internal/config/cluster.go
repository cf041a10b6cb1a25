package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	promcommon "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
)

// Cluster makes this node one of several sharing silences, the
// notification log and leader-only work through a consensus backend.
// Without it vigil runs single-node.
type Cluster struct {
	// Backend is "raft" (embedded; the nodes talk to each other) or "etcd".
	Backend string `yaml:"backend"`

	// For raft: this node's id, the host:port it listens on for the other
	// nodes and, when they reach it elsewhere, the host:port they use.
	NodeID        string `yaml:"node_id"`
	BindAddr      string `yaml:"bind_addr"`
	AdvertiseAddr string `yaml:"advertise_addr"`
	// Peers lists every member, this node included, the same on every node.
	Peers []ClusterPeer `yaml:"peers"`
	// Join starts a node with an empty data directory without founding a
	// cluster: it waits until the leader adds it (vigil cluster join).
	// Peers may then omit this node (they still give the others' api_url).
	// A node that already has state ignores it.
	Join bool `yaml:"join"`
	// ClusterID names the cluster; a data directory of another cluster is
	// refused. Empty: derived from the peers.
	ClusterID string `yaml:"cluster_id"`
	// Raft tunes the embedded Raft's timeouts; what is left out takes its
	// default (validate fills them in).
	Raft ClusterRaftTimeouts `yaml:"raft"`

	// For etcd: the endpoints, the key prefix vigil keeps its state under
	// (empty: /vigil), and TLS in Prometheus's tls_config format. NodeID
	// names the node there too.
	Endpoints []string             `yaml:"endpoints"`
	Prefix    string               `yaml:"prefix"`
	TLS       promcommon.TLSConfig `yaml:"tls_config"`
	// APIURL, for etcd, is this node's vigil API as the other nodes reach
	// it: etcd tells them the leader's, where they forward silence writes.
	// Empty: http_addr's host (this machine's name when it is a wildcard)
	// and port; see Config.ClusterSelfAPIURL.
	APIURL string `yaml:"api_url"`
	// APITLS is how this node checks the other nodes' vigil APIs over
	// https when it forwards to them (ca_file for a private CA;
	// cert_file/key_file when their web_config_file asks for client
	// certificates), in Prometheus's tls_config format. Empty: the
	// system's certificate authorities.
	APITLS promcommon.TLSConfig `yaml:"api_tls_config"`
}

// ClusterRaftTimeouts are the embedded Raft's timeouts, the same on every
// node. The defaults suit 3 to 5 nodes on one network: a lost leader is
// replaced in about 1 to 3 seconds.
type ClusterRaftTimeouts struct {
	// HeartbeatTimeout: a follower that has not heard from the leader for
	// this long (1s, randomised up to twice that) starts an election.
	HeartbeatTimeout model.Duration `yaml:"heartbeat_timeout"`
	// ElectionTimeout bounds a candidate's wait for votes (1s); at least
	// heartbeat_timeout.
	ElectionTimeout model.Duration `yaml:"election_timeout"`
	// LeaderLeaseTimeout: a leader that has not heard from a majority for
	// this long (500ms) steps down; at most heartbeat_timeout.
	LeaderLeaseTimeout model.Duration `yaml:"leader_lease_timeout"`
	// CommitTimeout (50ms): with no other traffic, how long the leader
	// waits before it sends followers an empty append, which tells them
	// the commit index. vigil's writes tell them at once, so lowering it
	// gains little and costs idle CPU.
	CommitTimeout model.Duration `yaml:"commit_timeout"`
}

// Defaults of ClusterRaftTimeouts.
const (
	DefaultRaftHeartbeatTimeout   = time.Second
	DefaultRaftElectionTimeout    = time.Second
	DefaultRaftLeaderLeaseTimeout = 500 * time.Millisecond
	DefaultRaftCommitTimeout      = 50 * time.Millisecond
)

// validate fills in the defaults and checks what Raft checks: below its
// floors (5ms; 1ms for commit_timeout) it refuses to start, and a lease
// longer than the heartbeat timeout, or an election timeout shorter,
// would let two leaders overlap or make elections fail.
func (r *ClusterRaftTimeouts) validate() error {
	for _, f := range []struct {
		name  string
		v     *model.Duration
		def   time.Duration
		floor time.Duration
	}{
		{"heartbeat_timeout", &r.HeartbeatTimeout, DefaultRaftHeartbeatTimeout, 5 * time.Millisecond},
		{"election_timeout", &r.ElectionTimeout, DefaultRaftElectionTimeout, 5 * time.Millisecond},
		{"leader_lease_timeout", &r.LeaderLeaseTimeout, DefaultRaftLeaderLeaseTimeout, 5 * time.Millisecond},
		{"commit_timeout", &r.CommitTimeout, DefaultRaftCommitTimeout, time.Millisecond},
	} {
		if *f.v == 0 {
			*f.v = model.Duration(f.def)
		}
		if time.Duration(*f.v) < f.floor {
			return fmt.Errorf("%w: cluster.raft.%s %s is below the minimum %s", ErrInvalid, f.name, *f.v, model.Duration(f.floor))
		}
	}
	if r.LeaderLeaseTimeout > r.HeartbeatTimeout {
		return fmt.Errorf("%w: cluster.raft.leader_lease_timeout %s exceeds heartbeat_timeout %s", ErrInvalid, r.LeaderLeaseTimeout, r.HeartbeatTimeout)
	}
	if r.ElectionTimeout < r.HeartbeatTimeout {
		return fmt.Errorf("%w: cluster.raft.election_timeout %s is below heartbeat_timeout %s", ErrInvalid, r.ElectionTimeout, r.HeartbeatTimeout)
	}
	return nil
}

// ClusterPeer is one member of a raft cluster.
type ClusterPeer struct {
	ID      string `yaml:"id"`
	Address string `yaml:"address"`
	// APIURL is the base URL of this member's vigil HTTP API, where the
	// other members forward silence writes to it while it leads. Empty:
	// the host of Address with this node's http_addr port, over https when
	// web_config_file sets up TLS (every member listening on the same HTTP
	// port, as in a StatefulSet); see Config.ClusterAPIURLs.
	APIURL string `yaml:"api_url"`
}

// Backends of Cluster.Backend.
const (
	ClusterRaft = "raft"
	ClusterEtcd = "etcd"
)

func (c *Cluster) validate() error {
	switch c.Backend {
	case ClusterRaft:
		return c.validateRaft()
	case ClusterEtcd:
		return c.validateEtcd()
	case "":
		return fmt.Errorf("%w: cluster.backend is empty: use \"raft\" or \"etcd\"", ErrInvalid)
	default:
		return fmt.Errorf("%w: cluster.backend %q: use \"raft\" or \"etcd\"", ErrInvalid, c.Backend)
	}
}

// validateRaft checks the shape of the section; what needs the data
// directory or the network (another cluster's state, a port in use) is
// checked when the node starts.
func (c *Cluster) validateRaft() error {
	if err := c.Raft.validate(); err != nil {
		return err
	}
	if c.NodeID == "" {
		return fmt.Errorf("%w: cluster.node_id is empty", ErrInvalid)
	}
	for name, addr := range map[string]string{"bind_addr": c.BindAddr, "advertise_addr": c.AdvertiseAddr} {
		if addr == "" && name == "advertise_addr" {
			continue
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return fmt.Errorf("%w: cluster.%s %q: %w", ErrInvalid, name, addr, err)
		}
	}
	if len(c.Peers) == 0 && !c.Join {
		return fmt.Errorf("%w: cluster.peers is empty: list every member, this node included", ErrInvalid)
	}
	ids := map[string]bool{}
	addrs := map[string]string{}
	for i, p := range c.Peers {
		if p.ID == "" {
			return fmt.Errorf("%w: cluster.peers[%d] has no id", ErrInvalid, i)
		}
		if _, _, err := net.SplitHostPort(p.Address); err != nil {
			return fmt.Errorf("%w: cluster.peers %s: address %q: %w", ErrInvalid, p.ID, p.Address, err)
		}
		if p.APIURL != "" {
			if err := validateAPIURL(p.APIURL); err != nil {
				return fmt.Errorf("%w: cluster.peers %s: api_url %q: %w", ErrInvalid, p.ID, p.APIURL, err)
			}
		}
		if ids[p.ID] {
			return fmt.Errorf("%w: cluster.peers lists %s twice", ErrInvalid, p.ID)
		}
		ids[p.ID] = true
		if other, ok := addrs[p.Address]; ok {
			return fmt.Errorf("%w: cluster.peers %s and %s share the address %s", ErrInvalid, other, p.ID, p.Address)
		}
		addrs[p.Address] = p.ID
	}
	if !ids[c.NodeID] && !c.Join {
		return fmt.Errorf("%w: cluster.node_id %s is not in cluster.peers", ErrInvalid, c.NodeID)
	}
	return nil
}

// validateEtcd checks the shape of the section; whether etcd answers, and
// whether the prefix holds another cluster, is checked when the node starts.
func (c *Cluster) validateEtcd() error {
	if c.Raft != (ClusterRaftTimeouts{}) {
		return fmt.Errorf("%w: cluster.raft is for backend raft; etcd keeps its own timeouts", ErrInvalid)
	}
	if len(c.Endpoints) == 0 {
		return fmt.Errorf("%w: cluster.backend etcd needs cluster.endpoints", ErrInvalid)
	}
	for _, e := range c.Endpoints {
		if err := validateEtcdEndpoint(e); err != nil {
			return fmt.Errorf("%w: cluster.endpoints %q: %w", ErrInvalid, e, err)
		}
	}
	// The keys are built below the prefix; the root would share the
	// keyspace with everything else in that etcd.
	if c.Prefix != "" && (!strings.HasPrefix(c.Prefix, "/") || strings.Trim(c.Prefix, "/") == "") {
		return fmt.Errorf("%w: cluster.prefix %q: use an absolute path below the root, such as /vigil", ErrInvalid, c.Prefix)
	}
	if c.APIURL != "" {
		if err := validateAPIURL(c.APIURL); err != nil {
			return fmt.Errorf("%w: cluster.api_url %q: %w", ErrInvalid, c.APIURL, err)
		}
	}
	// tls_config validates itself as it is decoded.
	return nil
}

// validateAPIURL checks an api_url: the base URL of a vigil API.
func validateAPIURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("want http:// or https:// and a host")
	}
	return nil
}

// validateEtcdEndpoint takes what etcd's client takes: a URL with an http
// or https scheme, or a bare host:port.
func validateEtcdEndpoint(e string) error {
	if !strings.Contains(e, "://") {
		_, _, err := net.SplitHostPort(e)
		return err
	}
	u, err := url.Parse(e)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("scheme %q: use http or https", u.Scheme)
	}
	if u.Host == "" {
		return fmt.Errorf("no host")
	}
	return nil
}

// ClusterAPIURLs maps each raft peer's id to the base URL of its vigil API
// (ClusterPeer.APIURL, or its default); nil without a raft cluster.
func (c *Config) ClusterAPIURLs() map[string]string {
	if c.Cluster == nil || c.Cluster.Backend != ClusterRaft {
		return nil
	}
	scheme := "http"
	if c.Auth != nil && c.Auth.TLSConfig() != nil {
		scheme = "https"
	}
	_, port, _ := net.SplitHostPort(c.HTTPAddr)
	urls := make(map[string]string, len(c.Cluster.Peers))
	for _, p := range c.Cluster.Peers {
		if p.APIURL != "" {
			urls[p.ID] = p.APIURL
			continue
		}
		host, _, _ := net.SplitHostPort(p.Address) // checked by validate
		urls[p.ID] = (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}).String()
	}
	return urls
}

// ClusterSelfAPIURL is this node's vigil API as other nodes reach it
// (cluster.api_url, or http_addr's host and port, this machine's name
// standing in for a wildcard host).
func (c *Config) ClusterSelfAPIURL() string {
	if c.Cluster != nil && c.Cluster.APIURL != "" {
		return c.Cluster.APIURL
	}
	scheme := "http"
	if c.Auth != nil && c.Auth.TLSConfig() != nil {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(c.HTTPAddr)
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host, _ = os.Hostname()
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}).String()
}

// clusterAPIHosts are the host names of ClusterAPIURLs.
func (c *Config) clusterAPIHosts() []string {
	var hosts []string
	for _, u := range c.ClusterAPIURLs() {
		if pu, err := url.Parse(u); err == nil {
			hosts = append(hosts, pu.Hostname())
		}
	}
	return hosts
}
