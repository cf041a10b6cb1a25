package config

import (
	"errors"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

func TestClusterAbsentMeansSingleNode(t *testing.T) {
	c, err := Load("testdata/good.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster != nil {
		t.Errorf("cluster = %+v without a cluster section", c.Cluster)
	}
}

func TestClusterRaft(t *testing.T) {
	c, err := Load("testdata/cluster_raft.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	if cl == nil || cl.Backend != ClusterRaft || cl.NodeID != "n2" || cl.BindAddr != "0.0.0.0:7946" || cl.AdvertiseAddr != "vigil-1.vigil:7946" {
		t.Fatalf("cluster = %+v", cl)
	}
	want := []ClusterPeer{
		{ID: "n1", Address: "vigil-0.vigil:7946"},
		{ID: "n2", Address: "vigil-1.vigil:7946"},
		{ID: "n3", Address: "vigil-2.vigil:7946", APIURL: "https://vigil-2.example:9443"},
	}
	if !slices.Equal(cl.Peers, want) {
		t.Errorf("peers = %+v, want %+v", cl.Peers, want)
	}
	// Without api_url, a peer's API is its raft host on this node's HTTP
	// port: the StatefulSet case, where every pod listens alike.
	c.HTTPAddr = "0.0.0.0:9090"
	urls := c.ClusterAPIURLs()
	wantURLs := map[string]string{
		"n1": "http://vigil-0.vigil:9090",
		"n2": "http://vigil-1.vigil:9090",
		"n3": "https://vigil-2.example:9443",
	}
	if !maps.Equal(urls, wantURLs) {
		t.Errorf("api urls = %v, want %v", urls, wantURLs)
	}
}

// cluster.raft's timeouts: what is given is kept, the rest defaults.
func TestClusterRaftTimeouts(t *testing.T) {
	for _, tc := range []struct {
		file string
		want ClusterRaftTimeouts
	}{
		{"cluster_raft.yaml", ClusterRaftTimeouts{
			HeartbeatTimeout: model.Duration(time.Second), ElectionTimeout: model.Duration(time.Second),
			LeaderLeaseTimeout: model.Duration(500 * time.Millisecond), CommitTimeout: model.Duration(50 * time.Millisecond),
		}},
		{"cluster_raft_timeouts.yaml", ClusterRaftTimeouts{
			HeartbeatTimeout: model.Duration(2 * time.Second), ElectionTimeout: model.Duration(3 * time.Second),
			LeaderLeaseTimeout: model.Duration(500 * time.Millisecond), CommitTimeout: model.Duration(20 * time.Millisecond),
		}},
	} {
		c, err := Load("testdata/"+tc.file, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if got := c.Cluster.Raft; got != tc.want {
			t.Errorf("%s: raft timeouts %+v, want %+v", tc.file, got, tc.want)
		}
	}
}

func TestClusterEtcd(t *testing.T) {
	c, err := Load("testdata/cluster_etcd.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Cluster
	if cl == nil || cl.Backend != ClusterEtcd || cl.Prefix != "/vigil/prod" || cl.TLS.CAFile == "" || cl.TLS.KeyFile == "" {
		t.Fatalf("cluster = %+v", cl)
	}
	want := []string{"https://etcd-0:2379", "https://etcd-1:2379", "etcd-2:2379"}
	if !slices.Equal(cl.Endpoints, want) {
		t.Errorf("endpoints = %v, want %v", cl.Endpoints, want)
	}
}

func TestClusterBad(t *testing.T) {
	tests := []struct {
		file string
		want string
	}{
		{"bad_cluster_backend.yaml", `cluster.backend "zookeeper"`},
		{"bad_cluster_no_backend.yaml", "cluster.backend is empty"},
		{"bad_cluster_no_node_id.yaml", "cluster.node_id is empty"},
		{"bad_cluster_bind_addr.yaml", "cluster.bind_addr"},
		{"bad_cluster_no_peers.yaml", "cluster.peers is empty"},
		{"bad_cluster_not_in_peers.yaml", "n4 is not in cluster.peers"},
		{"bad_cluster_duplicate_id.yaml", "lists n1 twice"},
		{"bad_cluster_duplicate_address.yaml", "share the address 10.0.0.1:7946"},
		{"bad_cluster_peer_address.yaml", `n2: address "10.0.0.2"`},
		{"bad_cluster_etcd_api_url.yaml", `cluster.api_url "vigil-0:7070"`},
		{"bad_cluster_api_url.yaml", `n2: api_url "10.0.0.2/vigil": want http:// or https://`},
		{"bad_cluster_unknown_field.yaml", "field nodeid not found"},
		{"bad_cluster_etcd_no_endpoints.yaml", "needs cluster.endpoints"},
		{"bad_cluster_etcd_endpoint.yaml", `cluster.endpoints "unix:///run/etcd.sock": scheme "unix"`},
		{"bad_cluster_etcd_bare_endpoint.yaml", `cluster.endpoints "etcd-0"`},
		{"bad_cluster_etcd_prefix.yaml", `cluster.prefix "vigil"`},
		{"bad_cluster_etcd_root_prefix.yaml", `cluster.prefix "/"`},
		{"bad_cluster_etcd_tls.yaml", "exactly one of key or key_file"},
		{"bad_cluster_raft_lease_over_heartbeat.yaml", "leader_lease_timeout 300ms exceeds heartbeat_timeout 200ms"},
		{"bad_cluster_raft_election_below_heartbeat.yaml", "election_timeout 500ms is below heartbeat_timeout 1s"},
		{"bad_cluster_raft_heartbeat_too_low.yaml", "heartbeat_timeout 2ms is below the minimum 5ms"},
		{"bad_cluster_etcd_raft.yaml", "cluster.raft is for backend raft"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Load("testdata/"+tc.file, nil)
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}

// On etcd a node publishes its own API URL: cluster.api_url, else
// http_addr's host and port, the machine's name for a wildcard host.
func TestClusterSelfAPIURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Skip(err)
	}
	for _, tc := range []struct {
		httpAddr, apiURL, want string
	}{
		{"10.0.0.5:7070", "", "http://10.0.0.5:7070"},
		{"0.0.0.0:7070", "", "http://" + net.JoinHostPort(host, "7070")},
		{":7070", "", "http://" + net.JoinHostPort(host, "7070")},
		{"0.0.0.0:7070", "https://vigil-0.example:443", "https://vigil-0.example:443"},
	} {
		c := &Config{HTTPAddr: tc.httpAddr, Cluster: &Cluster{Backend: ClusterEtcd, APIURL: tc.apiURL}}
		if got := c.ClusterSelfAPIURL(); got != tc.want {
			t.Errorf("http_addr %q, api_url %q: %q, want %q", tc.httpAddr, tc.apiURL, got, tc.want)
		}
	}
}

// join: true lets a node's peers omit it: it waits to be added rather than
// founding the cluster, which the same file without join refuses.
func TestClusterRaftJoin(t *testing.T) {
	c, err := Load("testdata/cluster_raft_join.yaml", nil)
	if err != nil {
		t.Fatal(err)
	}
	if cl := c.Cluster; cl == nil || !cl.Join || cl.NodeID != "n4" || len(cl.Peers) != 3 {
		t.Fatalf("cluster = %+v", c.Cluster)
	}
	c.Cluster.Join = false
	if err := c.Cluster.validate(); err == nil || !strings.Contains(err.Error(), "n4 is not in cluster.peers") {
		t.Errorf("the same section without join: %v, want n4 not in the peers", err)
	}
}
