package raft

import (
	"errors"
	"net"
	"sync"
	"time"

	hraft "github.com/hashicorp/raft"
)

// streamLayer is raft's TCP stream layer with two differences:
//   - it advertises the address as given rather than resolved once at start:
//     a peer named by DNS (a StatefulSet pod) may not resolve until it is up,
//     and may move;
//   - Close closes every connection, not only the listener: raft's transport
//     leaves pooled and accepted connections open, which keeps goroutines
//     of a closed node (and of its peers, reading from it) alive.
type streamLayer struct {
	net.Listener
	advertise tcpName

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newStreamLayer(ln net.Listener, advertise string) *streamLayer {
	return &streamLayer{Listener: ln, advertise: tcpName(advertise), conns: make(map[*trackedConn]struct{})}
}

var errStreamClosed = errors.New("raft stream layer closed")

func (s *streamLayer) track(c net.Conn) (net.Conn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = c.Close()
		return nil, errStreamClosed
	}
	t := &trackedConn{Conn: c, owner: s}
	s.conns[t] = struct{}{}
	return t, nil
}

func (s *streamLayer) Accept() (net.Conn, error) {
	c, err := s.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Dial(address hraft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	c, err := d.Dial("tcp", string(address))
	if err != nil {
		return nil, err
	}
	return s.track(c)
}

func (s *streamLayer) Addr() net.Addr { return s.advertise }

func (s *streamLayer) Close() error {
	err := s.Listener.Close()
	s.mu.Lock()
	s.closed = true
	conns := s.conns
	s.conns = nil
	s.mu.Unlock()
	for c := range conns {
		_ = c.Conn.Close()
	}
	return err
}

type trackedConn struct {
	net.Conn
	owner *streamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.owner.mu.Lock()
		delete(c.owner.conns, c)
		c.owner.mu.Unlock()
	})
	return c.Conn.Close()
}

// tcpName is a TCP address kept as its host:port text.
type tcpName string

func (a tcpName) Network() string { return "tcp" }
func (a tcpName) String() string  { return string(a) }
