package main

import (
	"bytes"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// faultNet stands between the nodes of a test cluster and what they talk
// consensus with. On Raft it stands between the nodes: every node
// advertises (and every peers list names) a proxy address, and the proxy
// forwards to the address the node binds. On etcd the nodes talk to etcd,
// not to each other: each node has a proxy of its own in front of every
// etcd member and is given those as its endpoints. Cutting a node refuses
// and closes every consensus connection to or from it, in both
// directions, until it is healed. Only consensus traffic passes through
// it: the nodes' HTTP APIs (silence writes forwarded to the leader, the
// webhook receiver) stay reachable, so a cut node is partitioned from the
// consensus, not from its clients.
//
// Raft dials without choosing its source address, so a Raft connection's
// sender is found in its first request: every Raft RPC header carries the
// sender's advertised address, which here is its proxy's, unique per node.
// An etcd proxy serves one node only, so it knows its sender.
type faultNet struct {
	mu    sync.Mutex
	byAdv map[string]string // advertised (proxy) address -> node id
	cut   map[string]bool
	conns map[*faultConn]struct{}
	lns   []net.Listener

	// unidentified counts connections dropped because no sender address
	// was found in their first bytes; Raft redials.
	unidentified atomic.Int64
}

type faultConn struct {
	from, to string
	client   net.Conn
	upstream net.Conn
}

func (c *faultConn) close() {
	_ = c.client.Close()
	_ = c.upstream.Close()
}

func newFaultNet(t *testing.T) *faultNet {
	f := &faultNet{byAdv: map[string]string{}, cut: map[string]bool{}, conns: map[*faultConn]struct{}{}}
	t.Cleanup(f.close)
	return f
}

// listen starts the proxy in front of node id, which binds target, and
// returns the address to advertise for it.
func (f *faultNet) listen(t *testing.T, id, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adv := ln.Addr().String()
	f.mu.Lock()
	f.byAdv[adv] = id
	f.lns = append(f.lns, ln)
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.handle(c, "", id, target)
		}
	}()
	return adv
}

// listenFor starts a proxy that only node from dials, in front of to
// (an etcd member), which listens on target, and returns its address.
func (f *faultNet) listenFor(t *testing.T, from, to, target string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.lns = append(f.lns, ln)
	f.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.handle(c, from, to, target)
		}
	}()
	return ln.Addr().String()
}

// sender finds the node whose advertised address comes first in b.
func (f *faultNet) sender(b []byte, to string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	from, at := "", -1
	for adv, id := range f.byAdv {
		if id == to {
			continue
		}
		if i := bytes.Index(b, []byte(adv)); i >= 0 && (at < 0 || i < at) {
			from, at = id, i
		}
	}
	return from
}

// handle forwards client's connection to target; from is its sender, or
// "" when it must be found in the first bytes (Raft).
func (f *faultNet) handle(client net.Conn, from, to, target string) {
	var first []byte
	if from == "" {
		// The first request names its sender within its first few hundred
		// bytes; read until it does.
		_ = client.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 4096)
		for from == "" && len(first) < 64<<10 {
			n, err := client.Read(buf)
			first = append(first, buf[:n]...)
			from = f.sender(first, to)
			if err != nil {
				break
			}
		}
		_ = client.SetReadDeadline(time.Time{})
		if from == "" {
			f.unidentified.Add(1)
			_ = client.Close()
			return
		}
	}
	f.mu.Lock()
	blocked := f.cut[from] || f.cut[to]
	f.mu.Unlock()
	if blocked {
		_ = client.Close()
		return
	}
	upstream, err := net.DialTimeout("tcp", target, 5*time.Second)
	if err != nil {
		_ = client.Close()
		return
	}
	c := &faultConn{from: from, to: to, client: client, upstream: upstream}
	f.mu.Lock()
	if f.cut[from] || f.cut[to] { // cut while dialling
		f.mu.Unlock()
		c.close()
		return
	}
	f.conns[c] = struct{}{}
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		delete(f.conns, c)
		f.mu.Unlock()
		c.close()
	}()
	if _, err := upstream.Write(first); err != nil {
		return
	}
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(upstream, client); done <- struct{}{} }()
	go func() { _, _ = io.Copy(client, upstream); done <- struct{}{} }()
	<-done
}

// isolate cuts every link of node id: connections open to or from it are
// closed, new ones refused.
func (f *faultNet) isolate(id string) {
	f.mu.Lock()
	f.cut[id] = true
	var open []*faultConn
	for c := range f.conns {
		if c.from == id || c.to == id {
			open = append(open, c)
		}
	}
	f.mu.Unlock()
	for _, c := range open {
		c.close()
	}
}

// heal restores node id's links.
func (f *faultNet) heal(id string) {
	f.mu.Lock()
	delete(f.cut, id)
	f.mu.Unlock()
}

func (f *faultNet) close() {
	f.mu.Lock()
	lns := f.lns
	var open []*faultConn
	for c := range f.conns {
		open = append(open, c)
	}
	f.mu.Unlock()
	for _, ln := range lns {
		_ = ln.Close()
	}
	for _, c := range open {
		c.close()
	}
}
