package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-observability/vigil/internal/consensus/consensustest"
	"github.com/vigil-observability/vigil/internal/consensus/etcd/etcdtest"
)

// cutProxy forwards TCP connections to an etcd member until cut: then it
// closes the open ones and refuses new ones, as a network partition would
// for the node behind it.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  []net.Conn
	wg     sync.WaitGroup
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.wg.Add(1)
			go func() { defer p.wg.Done(); p.forward(c) }()
		}
	}()
	t.Cleanup(func() {
		_ = ln.Close()
		p.partition()
		p.wg.Wait()
	})
	return p
}

func (p *cutProxy) endpoint() string { return "http://" + p.ln.Addr().String() }

func (p *cutProxy) forward(c net.Conn) {
	up, err := net.DialTimeout("tcp", p.target, time.Second)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.cut {
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns = append(p.conns, c, up)
	p.mu.Unlock()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
}

// partition closes every connection and refuses new ones.
func (p *cutProxy) partition() {
	p.mu.Lock()
	p.cut = true
	conns := p.conns
	p.conns = nil
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

// TestCutOffLeaderStepsDownBeforeItsLeaseExpires pins the leader's side of
// the lease: a leader cut off from etcd must stop counting itself the
// leader before etcd expires its lease, since from then on another node
// may lead; nor may it name itself leader by the key etcd still holds. etcd expires a lease TTL after the last keepalive it received;
// the client's session ends TTL after the last answer it got, and checks
// that only every half second, so by the session alone the old leader
// still counts itself leader after etcd has given the leadership away.
func TestCutOffLeaderStepsDownBeforeItsLeaseExpires(t *testing.T) {
	for round := range 3 {
		etcdCluster := etcdtest.Start(t, 1)
		member := strings.TrimPrefix(etcdCluster.Endpoints()[0], "http://")
		proxy := newCutProxy(t, member)
		open := func(id string, eps []string) *Node {
			n, err := Open(testOptions(eps, id, &consensustest.Recorder{}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = n.Close() })
			return n
		}
		old := open("n0", []string{proxy.endpoint()})
		deadline := time.Now().Add(10 * time.Second)
		for old.current() == nil {
			if time.Now().After(deadline) {
				t.Fatal("n0 alone did not lead within 10s")
			}
			time.Sleep(10 * time.Millisecond)
		}
		key := old.current().key
		other := open("n1", etcdCluster.Endpoints())

		// Watch the old leader's key from outside: its deletion is when
		// etcd expired the lease, and the others may take over.
		watcher, err := clientv3.New(clientv3.Config{Endpoints: etcdCluster.Endpoints(), DialTimeout: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = watcher.Close() })
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		t.Cleanup(cancel)
		expired := make(chan time.Time, 1)
		wch := watcher.Watch(ctx, key)
		go func() {
			for wr := range wch {
				for _, ev := range wr.Events {
					if ev.Type == clientv3.EventTypeDelete {
						expired <- time.Now()
						return
					}
				}
			}
		}()
		time.Sleep(300 * time.Millisecond) // the watch in place

		cutAt := time.Now()
		proxy.partition()
		var steppedDown time.Time
		for steppedDown.IsZero() {
			if old.current() == nil && !old.Leader().Self {
				steppedDown = time.Now()
			}
			select {
			case at := <-expired:
				if steppedDown.IsZero() {
					t.Fatalf("round %d: etcd expired the cut-off leader's lease %s after the cut, and it still counts itself the leader",
						round, at.Sub(cutAt).Round(time.Millisecond))
				}
				expired <- at
			case <-time.After(2 * time.Millisecond):
			case <-ctx.Done():
				t.Fatal("neither a step-down nor an expiry within 15s")
			}
		}
		if info := old.Leader(); info.ID == old.ID() {
			t.Errorf("round %d: stepped down, the cut-off node still names itself leader: %+v", round, info)
		}
		at := <-expired
		t.Logf("round %d: the cut-off leader stepped down %s after the cut, %s before etcd expired its lease",
			round, steppedDown.Sub(cutAt).Round(time.Millisecond), at.Sub(steppedDown).Round(time.Millisecond))
		for other.current() == nil {
			if ctx.Err() != nil {
				t.Fatal("n1 did not take over")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// TestNodeDoesNotNameAPreviousRunsKeyAsItself: a node that crashed while
// leading leaves its election key until etcd expires the lease. Started
// again, the node must not name itself leader by that key (the others'
// silence writes would come to it, to be refused), and leads once the
// key is gone, with a higher token.
func TestNodeDoesNotNameAPreviousRunsKeyAsItself(t *testing.T) {
	etcdCluster := etcdtest.Start(t, 1)
	raw, err := clientv3.New(clientv3.Config{Endpoints: etcdCluster.Endpoints(), DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = raw.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	lease, err := raw.Grant(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	val, _ := json.Marshal(nodeInfo{ID: "n0", Address: "n0.example:9090"})
	put, err := raw.Put(ctx, fmt.Sprintf("%s/%x", newKeys("/vigil-test").election, lease.ID), string(val), clientv3.WithLease(lease.ID))
	if err != nil {
		t.Fatal(err)
	}
	previous := uint64(put.Header.Revision)

	n, err := Open(testOptions(etcdCluster.Endpoints(), "n0", &consensustest.Recorder{}))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	observedOld := false
	for n.current() == nil {
		info := n.Leader()
		// Its own new key may show a moment before the node learns it won.
		if info.ID == "n0" && info.Term == previous {
			t.Fatalf("the restarted node names itself leader by its previous run's key: %+v", info)
		}
		observedOld = observedOld || (info.ID == "" && info.Term == previous)
		if ctx.Err() != nil {
			t.Fatal("the restarted node did not lead within 15s")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !observedOld {
		t.Error("the node never saw the previous run's key: the test checked nothing")
	}
	deadline := time.Now().Add(5 * time.Second)
	for info := n.Leader(); !info.Self || info.ID != "n0" || info.Term <= previous; info = n.Leader() {
		if time.Now().After(deadline) {
			t.Fatalf("leading, it reports %+v, want itself with a token above %d", info, previous)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
