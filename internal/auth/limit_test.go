package auth

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

func hashAtCost(t *testing.T, pass string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pass), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

// An unknown user name must cost what a known one costs, or the time an
// answer takes tells which names exist; a reload brings the dummy hash to
// the new users' cost.
func TestDummyHashHasTheUsersCost(t *testing.T) {
	users := func(costs ...int) Config {
		c := Config{BasicAuthUsers: map[string]string{}, Roles: map[string][]Role{}}
		for i, cost := range costs {
			name := "user" + strconv.Itoa(i)
			c.BasicAuthUsers[name] = hashAtCost(t, "pw", cost)
			c.Roles[name] = []Role{RoleRead}
		}
		return c
	}
	for _, tc := range []struct {
		costs []int
		want  int
	}{
		{[]int{6}, 6},
		{[]int{5, 7, 7}, 7}, // most users' cost
		{[]int{7, 5, 5}, 5},
		{[]int{5, 6}, 6}, // a tie: the higher
	} {
		a, err := New(users(tc.costs...))
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := bcrypt.Cost(a.creds.Load().dummy); got != tc.want {
			t.Errorf("users at costs %v: dummy hash cost %d, want %d", tc.costs, got, tc.want)
		}
	}
	tokensOnly, err := New(Config{BearerTokens: []BearerToken{{Name: "t", SHA256: sha("x"), Roles: []Role{RoleRead}}}})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := bcrypt.Cost(tokensOnly.creds.Load().dummy); got != bcrypt.DefaultCost {
		t.Errorf("no users: dummy cost %d, want bcrypt's default %d", got, bcrypt.DefaultCost)
	}

	a, _ := New(users(5))
	next, _ := New(users(7))
	if err := a.Update(next); err != nil {
		t.Fatal(err)
	}
	if got, _ := bcrypt.Cost(a.creds.Load().dummy); got != 7 {
		t.Errorf("after a reload to cost-7 users: dummy cost %d, want 7", got)
	}
}

// countingAuthenticator is testAuthenticator with a clock the test moves
// and a count of the password checks made.
func countingAuthenticator(t *testing.T) (*Authenticator, *atomic.Int64, *time.Time) {
	t.Helper()
	a := testAuthenticator(t)
	var checks atomic.Int64
	compare := a.compare
	a.compare = func(hash, pw []byte) error {
		checks.Add(1)
		return compare(hash, pw)
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a.limiter.now = func() time.Time { return now }
	return a, &checks, &now
}

// Past the budget of failed logins, a client gets 429 with Retry-After
// and no password is checked; another client, and a correct login of the
// same client that already succeeded, are not affected.
func TestFailedLoginsAreLimitedPerClient(t *testing.T) {
	a, checks, now := countingAuthenticator(t)
	var reached int
	h := a.Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached++ }))
	do := func(remote, authorization string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(http.MethodGet, "/api/v1/query?query=up", nil)
		r.RemoteAddr = remote
		r.Header.Set("Authorization", authorization)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	const attacker, attackerOtherPort, other = "192.0.2.1:40000", "192.0.2.1:40001", "198.51.100.7:5000"

	// The attacker's own correct login, made before: remembered, so it
	// needs no check later.
	if w := do(attacker, basicHeader("bob", "hunter2")); w.Code != http.StatusOK {
		t.Fatalf("correct login: %d", w.Code)
	}
	checks.Store(0)
	for i := range failureBurst {
		user := "alice"
		if i%2 == 1 {
			user = "nobody" // unknown names use the budget alike
		}
		if w := do(attacker, basicHeader(user, "guess"+strconv.Itoa(i))); w.Code != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i+1, w.Code)
		}
	}
	if n := checks.Load(); n != failureBurst {
		t.Fatalf("%d password checks for %d failures", n, failureBurst)
	}
	for _, remote := range []string{attacker, attackerOtherPort} {
		w := do(remote, basicHeader("alice", "one-more"))
		if w.Code != http.StatusTooManyRequests {
			t.Fatalf("past the budget from %s: %d, want 429", remote, w.Code)
		}
		if ra, err := strconv.Atoi(w.Header().Get("Retry-After")); err != nil || ra < 1 {
			t.Errorf("Retry-After %q, want whole seconds >= 1", w.Header().Get("Retry-After"))
		}
	}
	if n := checks.Load(); n != failureBurst {
		t.Errorf("%d password checks: a refused login must not be checked", n-failureBurst)
	}
	reachedBefore := reached
	if w := do(other, basicHeader("alice", "s3cret")); w.Code != http.StatusOK {
		t.Errorf("another client's correct login: %d, want 200", w.Code)
	}
	if w := do(other, basicHeader("alice", "wrong")); w.Code != http.StatusUnauthorized {
		t.Errorf("another client's wrong password: %d, want 401 (its own budget)", w.Code)
	}
	if w := do(attacker, basicHeader("bob", "hunter2")); w.Code != http.StatusOK {
		t.Errorf("the limited client's remembered login: %d, want 200", w.Code)
	}
	if w := do(attacker, "Bearer tok-read"); w.Code != http.StatusOK {
		t.Errorf("the limited client's bearer token: %d, want 200", w.Code)
	}
	if reached != reachedBefore+3 {
		t.Errorf("handler reached %d times, want 3", reached-reachedBefore)
	}

	// The budget refills at one failure per interval.
	*now = now.Add(failureInterval)
	checks.Store(0)
	if w := do(attacker, basicHeader("alice", "later")); w.Code != http.StatusUnauthorized || checks.Load() != 1 {
		t.Errorf("after %v: %d with %d checks, want 401 after one check", failureInterval, w.Code, checks.Load())
	}
	if w := do(attacker, basicHeader("alice", "again")); w.Code != http.StatusTooManyRequests {
		t.Errorf("right after: %d, want 429", w.Code)
	}
}

func TestFailureLimiterKeys(t *testing.T) {
	l := newFailureLimiter()
	now := time.Now()
	l.now = func() time.Time { return now }
	spend := func(addr string) error {
		var err error
		for range failureBurst + 1 {
			if err = l.take(netip.MustParseAddr(addr)); err != nil {
				break
			}
		}
		return err
	}
	// One IPv6 host holds its /64: other addresses in it share the budget.
	if err := spend("2001:db8:1:2::1"); !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("budget not enforced: %v", err)
	}
	if err := l.take(netip.MustParseAddr("2001:db8:1:2::ffff")); !errors.Is(err, ErrTooManyFailures) {
		t.Errorf("same /64: %v, want limited", err)
	}
	if err := l.take(netip.MustParseAddr("2001:db8:1:3::1")); err != nil {
		t.Errorf("another /64: %v", err)
	}
	if err := spend("::ffff:203.0.113.9"); err == nil || l.take(netip.MustParseAddr("203.0.113.9")) == nil {
		t.Error("an IPv4-mapped address and the IPv4 address are one client")
	}
	if err := l.take(netip.Addr{}); err != nil {
		t.Errorf("no address known: %v, want no per-client limit", err)
	}
	// Memory stays bounded however many addresses fail.
	for i := range maxClients + 10 {
		_ = l.take(netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)}))
	}
	if n := len(l.clients); n > maxClients {
		t.Errorf("%d clients remembered, want at most %d", n, maxClients)
	}
}

// Password checks queue for a few slots; past maxWaiting queued checks the
// next one is refused at once rather than adding to the queue.
func TestPasswordChecksBoundedAtOnce(t *testing.T) {
	l := newFailureLimiter()
	for range cap(l.slots) {
		if err := l.acquire(); err != nil {
			t.Fatal(err)
		}
	}
	l.waiting.Store(maxWaiting) // as if that many were queued
	err := l.acquire()
	var le *LimitError
	if !errors.As(err, &le) || le.RetryAfter <= 0 {
		t.Fatalf("acquire with a full queue: %v, want a LimitError", err)
	}
	if l.waiting.Load() != maxWaiting {
		t.Errorf("a refused check stayed counted as waiting")
	}
}

// A reload keeps the remembered logins of users whose hash did not change:
// otherwise every client would need a password check at once, and a client
// out of failed-login budget could not log in again.
func TestReloadKeepsUnchangedLogins(t *testing.T) {
	a, checks, _ := countingAuthenticator(t)
	for _, h := range []string{basicHeader("alice", "s3cret"), basicHeader("bob", "hunter2")} {
		if _, err := a.Authenticate(h); err != nil {
			t.Fatal(err)
		}
	}
	old := a.creds.Load()
	next, err := New(Config{
		BasicAuthUsers: map[string]string{"alice": string(old.users["alice"].hash), "bob": bcryptHash(t, "rotated")},
		Roles:          map[string][]Role{"alice": {RoleRead}, "bob": {RoleRead}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Update(next); err != nil {
		t.Fatal(err)
	}
	checks.Store(0)
	if roles, err := a.Authenticate(basicHeader("alice", "s3cret")); err != nil || !slices.Equal(roles, []Role{RoleRead}) || checks.Load() != 0 {
		t.Errorf("unchanged user after reload: %v %v with %d checks, want the new roles and no check", roles, err, checks.Load())
	}
	if _, err := a.Authenticate(basicHeader("bob", "hunter2")); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("bob's old password after its change: %v, want refused", err)
	}
}
