package spanmetrics

import (
	"strings"

	"go.opentelemetry.io/collector/pdata/pcommon"
)

// Values of the side label of the service graph's own metrics.
const (
	sideClient = "client"
	sideServer = "server"
)

// Connection types, as the connection_type label of the servicegraph
// connector: "" for requests, messaging_system when either half is a
// producer or consumer span, database for a client span with db.*
// attributes.
const (
	connRequest uint8 = iota
	connMessaging
	connDatabase
)

var connectionTypes = [...]string{connRequest: "", connMessaging: "messaging_system", connDatabase: "database"}

type edgeKey struct {
	client, server string
	conn           uint8
}

func validEdgeKey(k edgeKey) edgeKey {
	k.client, k.server = validString(k.client), validString(k.server)
	return k
}

func ownEdgeKey(k edgeKey) edgeKey {
	k.client, k.server = strings.Clone(k.client), strings.Clone(k.server)
	return k
}

func overflowEdgeKeys(k edgeKey) (edgeKey, edgeKey) {
	k.server = Overflow
	o := k
	o.client = Overflow
	return k, o
}

type edgeValues struct {
	failed         uint64
	server, client hist // their count is the number of requests
}

// countEdge records one request from client to server.
func (r *Recorder) countEdge(k edgeKey, client, server half) {
	e := r.edges.get(k, r.maxSeries, r.startMs)
	if client.failed || server.failed {
		e.v.failed++
	}
	e.v.client.observe(client.durNs)
	e.v.server.observe(server.durNs)
}

// halfKey identifies an edge: the trace and the client span's ID, which is
// the server span's parent span ID.
type halfKey struct {
	trace pcommon.TraceID
	span  pcommon.SpanID
}

// half is what an edge needs from one of its spans.
type half struct {
	service string // interned: owned by the Recorder
	durNs   int64
	failed  bool
	set     bool
}

type pendingEdge struct {
	key            halfKey
	expires        int64 // unix nanoseconds
	client, server half  // exactly one is set
	messaging      bool
	prev, next     int32 // toward older and newer entries; -1 at the ends
}

// pendingStore holds halves waiting for the other half in a map and a
// doubly linked list in arrival order, which is also expiry order: the TTL
// is the same for all. Slots are reused, so a steady state allocates
// nothing.
type pendingStore struct {
	index      map[halfKey]int32
	slots      []pendingEdge
	free       []int32
	head, tail int32 // oldest and newest; -1 when empty
	max        int
}

func (p *pendingStore) init(max int) {
	p.index = map[halfKey]int32{}
	p.head, p.tail = -1, -1
	p.max = max
}

func (p *pendingStore) len() int { return len(p.index) }

func (p *pendingStore) push(e pendingEdge) {
	var i int32
	if n := len(p.free); n > 0 {
		i = p.free[n-1]
		p.free = p.free[:n-1]
	} else {
		i = int32(len(p.slots))
		p.slots = append(p.slots, pendingEdge{})
	}
	e.prev, e.next = p.tail, -1
	p.slots[i] = e
	if p.tail >= 0 {
		p.slots[p.tail].next = i
	} else {
		p.head = i
	}
	p.tail = i
	p.index[e.key] = i
}

// releaseAbove is the slot count above which an empty pendingStore lets
// its slots go: a burst of traffic can leave room for the 100,000 halves
// of MaxPendingEdges (15 MiB and its index) behind it once every half has
// expired.
const releaseAbove = 4096

// releaseIfEmpty drops the slots and the index of an empty store that grew
// past releaseAbove. Steady traffic rarely empties the store, and a trickle
// never grows it that far, so neither pays for the regrowth.
func (p *pendingStore) releaseIfEmpty() {
	if p.len() > 0 || cap(p.slots) <= releaseAbove {
		return
	}
	p.slots, p.free = nil, nil
	p.index = map[halfKey]int32{}
	p.head, p.tail = -1, -1
}

// remove unlinks slot i and returns its entry.
func (p *pendingStore) remove(i int32) pendingEdge {
	e := p.slots[i]
	if e.prev >= 0 {
		p.slots[e.prev].next = e.next
	} else {
		p.head = e.next
	}
	if e.next >= 0 {
		p.slots[e.next].prev = e.prev
	} else {
		p.tail = e.prev
	}
	delete(p.index, e.key)
	p.slots[i] = pendingEdge{} // drop the service string
	p.free = append(p.free, i)
	return e
}

// observeHalf pairs h with its other half, or keeps it waiting; r.mu is
// held.
func (r *Recorder) observeHalf(k halfKey, isServer bool, h half, messaging bool, now int64) {
	p := &r.pending
	if i, ok := p.index[k]; ok {
		e := &p.slots[i]
		if isServer == e.server.set {
			return // the same half again (a retried export): count it once
		}
		e.messaging = e.messaging || messaging
		done := p.remove(i)
		if isServer {
			done.server = h
		} else {
			done.client = h
		}
		conn := connRequest
		if done.messaging {
			conn = connMessaging
		}
		r.countEdge(edgeKey{client: done.client.service, server: done.server.service, conn: conn}, done.client, done.server)
		return
	}
	if p.max <= 0 {
		return
	}
	if p.len() >= p.max {
		e := p.remove(p.head)
		r.evicted[sideIndex(e.server.set)].Inc()
	}
	e := pendingEdge{key: k, expires: now + r.edgeTTL, messaging: messaging}
	if isServer {
		e.server = h
	} else {
		e.client = h
	}
	p.push(e)
}

// expirePending counts and forgets the halves whose TTL has passed; r.mu is
// held.
func (r *Recorder) expirePending(now int64) {
	p := &r.pending
	for p.head >= 0 && p.slots[p.head].expires <= now {
		e := p.remove(p.head)
		service := e.client.service
		if e.server.set {
			service = e.server.service
		}
		k := unpairedKey{service: service, server: e.server.set}
		c := r.unpaired[k]
		if c == nil {
			side := sideClient
			if k.server {
				side = sideServer
			}
			c = r.unpairedVec.WithLabelValues(service, side)
			r.unpaired[k] = c
		}
		c.Inc()
	}
}

type unpairedKey struct {
	service string
	server  bool
}

func sideIndex(server bool) int {
	if server {
		return 1
	}
	return 0
}
