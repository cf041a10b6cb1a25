package auth

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// ErrTooManyFailures is returned, wrapped in a *LimitError, when a client
// sent too many wrong passwords lately, or when vigil is checking as many
// passwords as it will at once; no password was checked.
var ErrTooManyFailures = errors.New("too many failed logins")

// LimitError says when to retry.
type LimitError struct {
	RetryAfter time.Duration
	reason     string
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s: retry in %s", e.reason, e.RetryAfter.Round(time.Second))
}

func (e *LimitError) Unwrap() error { return ErrTooManyFailures }

// Failed logins each client may make: a burst, then one per interval.
// Every password check costs tens of milliseconds of CPU by design
// (bcrypt), so a client guessing passwords would otherwise take CPU from
// everyone's queries. A person mistyping is far inside these; a script
// with a wrong password is slowed to one check per second.
const (
	failureBurst    = 10
	failureInterval = time.Second
	// maxClients bounds the clients remembered; past it, those whose
	// budget has refilled are forgotten, and if none has, all are.
	maxClients = 10_000
	// maxWaiting bounds password checks queued for a slot; past it a
	// check is refused at once instead of queuing.
	maxWaiting = 64
)

// failureLimiter is a token bucket per client address: a password check
// takes a token, a correct password gives it back, so that only failures
// use the budget up.
type failureLimiter struct {
	now     func() time.Time
	mu      sync.Mutex
	clients map[netip.Prefix]*bucket

	// slots bounds the password checks running at once, over all clients
	// (half the CPUs): many clients together cannot take every core.
	slots   chan struct{}
	waiting atomic.Int64
}

type bucket struct {
	tokens float64
	last   time.Time
}

func newFailureLimiter() *failureLimiter {
	return &failureLimiter{
		now:     time.Now,
		clients: map[netip.Prefix]*bucket{},
		slots:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2)),
	}
}

// clientKey groups an IPv6 client by its /64, which one host usually holds
// whole: counting each address apart would let it try 2^64 times.
func clientKey(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// refill brings b up to date at now.
func (b *bucket) refill(now time.Time) {
	b.tokens = math.Min(failureBurst, b.tokens+now.Sub(b.last).Seconds()/failureInterval.Seconds())
	b.last = now
}

// take spends one token of client's budget, or says how long until one is
// back. An invalid client address (no address known) is not limited.
func (l *failureLimiter) take(client netip.Addr) error {
	if !client.IsValid() {
		return nil
	}
	now := l.now()
	key := clientKey(client)
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.clients[key]
	if !ok {
		if len(l.clients) >= maxClients {
			l.forget(now)
		}
		b = &bucket{tokens: failureBurst, last: now}
		l.clients[key] = b
	}
	b.refill(now)
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) * float64(failureInterval))
		return &LimitError{RetryAfter: wait, reason: "too many failed logins from this address"}
	}
	b.tokens--
	return nil
}

// giveBack returns the token a correct password took.
func (l *failureLimiter) giveBack(client netip.Addr) {
	if !client.IsValid() {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if b, ok := l.clients[clientKey(client)]; ok {
		b.tokens = math.Min(failureBurst, b.tokens+1)
	}
}

// forget drops the clients whose budget is full again; if that frees
// nothing (many addresses failing at once), all of them. l.mu is held.
func (l *failureLimiter) forget(now time.Time) {
	for k, b := range l.clients {
		if b.refill(now); b.tokens >= failureBurst {
			delete(l.clients, k)
		}
	}
	if len(l.clients) >= maxClients {
		clear(l.clients)
	}
}

// acquire waits for a password-check slot; release gives it back.
func (l *failureLimiter) acquire() error {
	if l.waiting.Add(1) > maxWaiting {
		l.waiting.Add(-1)
		return &LimitError{RetryAfter: time.Second, reason: "too many password checks at once"}
	}
	l.slots <- struct{}{}
	l.waiting.Add(-1)
	return nil
}

func (l *failureLimiter) release() { <-l.slots }
