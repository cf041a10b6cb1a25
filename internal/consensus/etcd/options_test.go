package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/consensus"
	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/consensus/etcd/etcdtest"
	"github.com/vigil-observability/vigil/internal/testport"
)

func TestOpenRejectsBadOptions(t *testing.T) {
	good := func() Options { return testOptions([]string{"http://127.0.0.1:1"}, "n0", &consensustest.Recorder{}) }
	for _, tc := range []struct {
		name  string
		edit  func(*Options)
		field string
	}{
		{"no endpoints", func(o *Options) { o.Endpoints = nil }, "no endpoints"},
		{"blank endpoint", func(o *Options) { o.Endpoints = []string{" "} }, "endpoint 0 is empty"},
		{"no node id", func(o *Options) { o.NodeID = "" }, "node_id is empty"},
		{"slash in node id", func(o *Options) { o.NodeID = "a/b" }, "contains a slash"},
		{"no address", func(o *Options) { o.Address = "" }, "address is empty"},
		{"no state machine", func(o *Options) { o.StateMachine = nil }, "no state machine"},
		{"root prefix", func(o *Options) { o.Prefix = "/" }, "root of the keyspace"},
		{"sub-second ttl", func(o *Options) { o.SessionTTL = 500 * time.Millisecond }, "lease granularity"},
		{"negative threshold", func(o *Options) { o.SnapshotThreshold = -1 }, "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good()
			tc.edit(&o)
			n, err := Open(o)
			if err == nil {
				_ = n.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), tc.field) {
				t.Fatalf("Open: %v, want ErrInvalidOptions about %q", err, tc.field)
			}
		})
	}
}

func TestOpenFailsQuicklyOnUnreachableEtcd(t *testing.T) {
	// A port claimed and never bound: connections are refused.
	addr := testport.Addr(t)
	for _, tc := range []struct {
		name string
		eps  []string
	}{
		{"refused", []string{"http://" + addr}},
		// Nothing answers at a blackholed address (TEST-NET-1): the dial
		// timeout, not the OS's, bounds the wait.
		{"no answer", []string{"http://192.0.2.1:2379"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(tc.eps, "n0", &consensustest.Recorder{})
			o.DialTimeout = time.Second
			start := time.Now()
			n, err := Open(o)
			took := time.Since(start)
			if err == nil {
				_ = n.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Fatalf("Open: %v, want ErrUnreachable", err)
			}
			if took > 3*time.Second {
				t.Fatalf("Open took %s with a 1s dial timeout", took)
			}
			t.Logf("Open failed after %s: %v", took.Round(time.Millisecond), err)
		})
	}
}

func TestOpenRefusesAnotherClustersPrefix(t *testing.T) {
	e := etcdtest.Start(t, 1)
	open := func(clusterID, prefix string) (*Node, error) {
		o := testOptions(e.Endpoints(), "n0", &consensustest.Recorder{})
		o.ClusterID, o.Prefix = clusterID, prefix
		return Open(o)
	}
	n, err := open("blue", "/shared")
	if err != nil {
		t.Fatal(err)
	}
	_ = n.Close()

	for _, tc := range []struct {
		name, clusterID, prefix string
		wantErr                 error
	}{
		{"same id", "blue", "/shared", nil},
		{"no id accepts what is there", "", "/shared/", nil},
		{"other id", "green", "/shared", consensus.ErrClusterMismatch},
		{"other id, own prefix", "green", "/green", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := open(tc.clusterID, tc.prefix)
			if err == nil {
				_ = n.Close()
			}
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestTLS(t *testing.T) {
	e, tlsConfig := etcdtest.StartTLS(t, 1)
	for _, tc := range []struct {
		name    string
		tls     *tls.Config
		wantErr error
	}{
		{"trusted", tlsConfig, nil},
		// Without the CA the handshake fails; Open says so within the
		// dial timeout rather than hanging.
		{"untrusted", &tls.Config{MinVersion: tls.VersionTLS12}, ErrUnreachable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(e.Endpoints(), "n0", &consensustest.Recorder{})
			o.TLS = tc.tls
			o.DialTimeout = time.Second
			n, err := Open(o)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Fatalf("Open: %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			defer n.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := n.Campaign(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := n.Propose(ctx, []byte("over tls")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
