// Package auth authenticates and authorises requests to every vigil
// listener. Its configuration is a web config file in the Prometheus
// exporter-toolkit format (tls_server_config, basic_auth_users with bcrypt
// hashes) extended with vigil's roles (vigil_roles) and hashed bearer
// tokens (bearer_tokens). Which role a route needs is decided in one place,
// Classify (HTTP) and ClassifyGRPC (gRPC).
package auth

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/exporter-toolkit/web"
	"golang.org/x/crypto/bcrypt"
	"gopkg.in/yaml.v3"
)

// ErrInvalid wraps every problem found in a web config file.
var ErrInvalid = errors.New("invalid web config")

// ErrUnauthenticated is returned for missing or wrong credentials.
var ErrUnauthenticated = errors.New("missing or invalid credentials")

// Config is the web config file. The first two keys are the
// exporter-toolkit's, with its meaning; the others are vigil's.
type Config struct {
	TLSServerConfig web.TLSConfig `yaml:"tls_server_config"`
	// BasicAuthUsers maps user names to bcrypt hashes of their passwords.
	BasicAuthUsers map[string]string `yaml:"basic_auth_users"`
	// Roles maps each user of BasicAuthUsers to its roles.
	Roles map[string][]Role `yaml:"vigil_roles"`
	// BearerTokens are accepted as "Authorization: Bearer <token>".
	BearerTokens []BearerToken `yaml:"bearer_tokens"`
}

// BearerToken is a token known by its SHA-256 hash only, so the file
// does not hold anything that grants access.
type BearerToken struct {
	// Name identifies the token in logs and errors (e.g. "otel-collector").
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token.
	SHA256 string `yaml:"sha256"`
	Roles  []Role `yaml:"roles"`
}

// Authenticator checks credentials against a loaded Config. It is safe for
// concurrent use. Its users, tokens and roles can be replaced while it
// serves (Update, on a configuration reload); its TLS settings cannot.
type Authenticator struct {
	creds  atomic.Pointer[credentialSet]
	tls    *tls.Config   // nil: plain TCP
	tlsSrc web.TLSConfig // what tls was built from, to tell a change

	// limiter bounds password checks per client and at once; it outlives
	// reloads, so that a reload does not reset a guesser's budget.
	limiter *failureLimiter
	// compare checks a password against a bcrypt hash (a field so that
	// tests can count the checks).
	compare func(hash, password []byte) error
}

// credentialSet is the users and tokens of one version of the file.
type credentialSet struct {
	users  map[string]user
	tokens []token

	// bcrypt costs tens of milliseconds by design; a client sending the
	// same basic credentials on every request pays it once. Only
	// successes are cached, keyed by a hash of user and password, with
	// the user's name; a reload keeps the entries of users whose hash did
	// not change (so it does not make every client pay again at once),
	// and drops the others, so a removed password stops working.
	mu    sync.Mutex
	cache map[[sha256.Size]byte]string

	// dummy is compared against when the user is unknown, so that a wrong
	// user name takes as long as a wrong password: it has the cost of the
	// users' own hashes, and is made again with them on a reload.
	dummy []byte
}

type user struct {
	hash  []byte
	roles []Role
}

type token struct {
	name  string
	sum   []byte
	roles []Role
}

// maxCache bounds the credential cache; it is emptied when full.
const maxCache = 1024

// dummyCost is the cost of the dummy hash for c's users: the cost most of
// them use (the higher one on a tie), so that an unknown name takes as long
// as most known ones. Without users, bcrypt's default.
func dummyCost(users map[string]string) int {
	count := map[int]int{}
	best := bcrypt.DefaultCost
	for _, h := range users {
		c, err := bcrypt.Cost([]byte(h))
		if err != nil {
			continue
		}
		count[c]++
		if count[c] > count[best] || count[c] == count[best] && c > best {
			best = c
		}
	}
	return best
}

// Load reads the web config file at path; relative TLS file paths in it are
// relative to the file.
func Load(path string) (*Authenticator, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("web config: %w", err)
	}
	a, err := Parse(data, filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("web config %s: %w", path, err)
	}
	return a, nil
}

// Parse builds an Authenticator from a web config body; dir resolves
// relative paths. A file that accepts no one (no users and no tokens) is
// refused: with authentication on it would lock everyone out, and a
// missing section is more likely a mistake than an intent.
func Parse(data []byte, dir string) (*Authenticator, error) {
	// The exporter-toolkit's defaults.
	c := Config{TLSServerConfig: web.TLSConfig{
		MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS13, PreferServerCipherSuites: true,
	}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// io.EOF: an empty file, refused by New for naming no one.
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if dir != "" {
		c.TLSServerConfig.SetDirectory(dir)
	}
	return New(c)
}

// New builds an Authenticator from c.
func New(c Config) (*Authenticator, error) {
	if len(c.BasicAuthUsers) == 0 && len(c.BearerTokens) == 0 {
		return nil, fmt.Errorf("%w: no basic_auth_users and no bearer_tokens: nobody could authenticate; add at least one", ErrInvalid)
	}
	creds := &credentialSet{users: map[string]user{}, cache: map[[sha256.Size]byte]string{}}
	for name, hash := range c.BasicAuthUsers {
		if _, err := bcrypt.Cost([]byte(hash)); err != nil {
			return nil, fmt.Errorf("%w: basic_auth_users %q: not a bcrypt hash (generate one with `htpasswd -nbBC 10 USER PASSWORD`): %w", ErrInvalid, name, err)
		}
		roles, ok := c.Roles[name]
		if !ok || len(roles) == 0 {
			return nil, fmt.Errorf("%w: user %q has no roles: add it to vigil_roles with some of ingest, read, admin", ErrInvalid, name)
		}
		if err := checkRoles(roles); err != nil {
			return nil, fmt.Errorf("%w: vigil_roles %q: %w", ErrInvalid, name, err)
		}
		creds.users[name] = user{hash: []byte(hash), roles: slices.Clone(roles)}
	}
	for name := range c.Roles {
		if _, ok := c.BasicAuthUsers[name]; !ok {
			return nil, fmt.Errorf("%w: vigil_roles names %q, which is not in basic_auth_users", ErrInvalid, name)
		}
	}
	for i, t := range c.BearerTokens {
		id := t.Name
		if id == "" {
			id = fmt.Sprintf("#%d", i+1)
		}
		sum, err := hex.DecodeString(t.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("%w: bearer_tokens %s: sha256 must be 64 hex digits (printf %%s TOKEN | sha256sum)", ErrInvalid, id)
		}
		if len(t.Roles) == 0 {
			return nil, fmt.Errorf("%w: bearer_tokens %s has no roles", ErrInvalid, id)
		}
		if err := checkRoles(t.Roles); err != nil {
			return nil, fmt.Errorf("%w: bearer_tokens %s: %w", ErrInvalid, id, err)
		}
		creds.tokens = append(creds.tokens, token{name: id, sum: sum, roles: slices.Clone(t.Roles)})
	}
	dummy, err := bcrypt.GenerateFromPassword([]byte("vigil-no-such-user"), dummyCost(c.BasicAuthUsers))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	creds.dummy = dummy
	a := &Authenticator{tlsSrc: c.TLSServerConfig, limiter: newFailureLimiter(), compare: bcrypt.CompareHashAndPassword}
	a.creds.Store(creds)
	if c.TLSServerConfig.IsEnabled() {
		tc, err := web.ConfigToTLSConfig(&c.TLSServerConfig)
		if err != nil {
			return nil, fmt.Errorf("%w: tls_server_config: %w", ErrInvalid, err)
		}
		a.tls = tc
	}
	return a, nil
}

// ErrRestartNeeded refuses a reload that changes what running listeners
// cannot: turning authentication or TLS on or off, or other TLS settings.
var ErrRestartNeeded = errors.New("needs a restart")

// Update gives a the users, tokens and roles of next, as a configuration
// reload does: requests that already authenticated finish, the next ones
// are checked against next. A nil a or next (authentication off before or
// after) or different TLS settings are refused with ErrRestartNeeded, and a
// is left as it was. Certificate and key files need no reload: they are
// read again at each handshake.
func (a *Authenticator) Update(next *Authenticator) error {
	if err := a.CheckUpdate(next); err != nil || a == nil {
		return err
	}
	n := next.creds.Load()
	n.keepCached(a.creds.Load())
	a.creds.Store(n)
	return nil
}

// keepCached copies old's cached successes of the users whose password
// hash is the same in c.
func (c *credentialSet) keepCached(old *credentialSet) {
	old.mu.Lock()
	defer old.mu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for key, name := range old.cache {
		if u, ok := c.users[name]; ok && bytes.Equal(u.hash, old.users[name].hash) {
			c.cache[key] = name
		}
	}
}

// CheckUpdate says whether Update(next) would be accepted, without
// changing anything: a reload checks every part before applying any.
func (a *Authenticator) CheckUpdate(next *Authenticator) error {
	switch {
	case a == nil && next == nil:
		return nil
	case a == nil:
		return fmt.Errorf("turning authentication on (web_config_file) %w", ErrRestartNeeded)
	case next == nil:
		return fmt.Errorf("turning authentication off (web_config_file) %w", ErrRestartNeeded)
	case !reflect.DeepEqual(a.tlsSrc, next.tlsSrc):
		return fmt.Errorf("changing tls_server_config %w (renewed certificate and key files are picked up without one)", ErrRestartNeeded)
	}
	return nil
}

func checkRoles(roles []Role) error {
	for _, r := range roles {
		if !r.valid() {
			return fmt.Errorf("unknown role %q: use ingest, read, admin or config", r)
		}
	}
	return nil
}

// TLSConfig is the server TLS configuration for every listener, or nil
// when tls_server_config is absent. The certificate and key are read again
// at each handshake, so renewed files take effect without a restart.
func (a *Authenticator) TLSConfig() *tls.Config {
	if a.tls == nil {
		return nil
	}
	return a.tls.Clone()
}

// Authenticate checks the value of an Authorization header ("Basic ...",
// "Bearer ..." or Elasticsearch's "ApiKey ...") and returns the roles it grants, or ErrUnauthenticated.
// It is AuthenticateFrom without a client address: password checks are
// bounded at once, but not per client.
func (a *Authenticator) Authenticate(authorization string) ([]Role, error) {
	return a.AuthenticateFrom(netip.Addr{}, authorization)
}

// AuthenticateFrom is Authenticate for a request from client (its IP
// address). A client that sent too many wrong passwords lately gets a
// *LimitError (ErrTooManyFailures) without its password being checked,
// until its budget refills; credentials that already succeeded, and bearer
// tokens (a hash, not a bcrypt check), still pass.
func (a *Authenticator) AuthenticateFrom(client netip.Addr, authorization string) ([]Role, error) {
	roles, _, err := a.identify(client, authorization)
	return roles, err
}

// identify is AuthenticateFrom that also names the credential: a user's
// name, or "token:" and a bearer token's name.
func (a *Authenticator) identify(client netip.Addr, authorization string) ([]Role, string, error) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok {
		return nil, "", ErrUnauthenticated
	}
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		raw, err := base64.StdEncoding.DecodeString(cred)
		if err != nil {
			return nil, "", ErrUnauthenticated
		}
		name, pass, ok := strings.Cut(string(raw), ":")
		if !ok {
			return nil, "", ErrUnauthenticated
		}
		roles, err := a.basic(client, name, pass)
		return roles, name, err
	case "bearer":
		return a.bearer(cred)
	case "apikey":
		// Elasticsearch clients and agents send an API key as
		// base64("id:key"): to vigil that is a basic-auth user and its
		// password, so an agent that knows only API keys can still ship.
		// Anything else is taken as a bearer token, for clients that send
		// the key they were given as it is.
		if raw, err := base64.StdEncoding.DecodeString(cred); err == nil {
			if name, pass, ok := strings.Cut(string(raw), ":"); ok {
				roles, err := a.basic(client, name, pass)
				return roles, name, err
			}
		}
		return a.bearer(cred)
	}
	return nil, "", ErrUnauthenticated
}

func (a *Authenticator) basic(client netip.Addr, name, pass string) ([]Role, error) {
	c := a.creds.Load()
	u, known := c.users[name]
	// name never holds a colon (Authenticate splits at the first one), so
	// "name:pass" names one pair only.
	key := sha256.Sum256([]byte(name + ":" + pass))
	if known {
		c.mu.Lock()
		_, hit := c.cache[key]
		c.mu.Unlock()
		if hit {
			return u.roles, nil
		}
	}
	hash := c.dummy
	if known {
		hash = u.hash
	}
	if err := a.limiter.take(client); err != nil {
		return nil, err
	}
	if err := a.limiter.acquire(); err != nil {
		return nil, err
	}
	err := a.compare(hash, []byte(pass))
	a.limiter.release()
	if err != nil || !known {
		return nil, ErrUnauthenticated
	}
	a.limiter.giveBack(client)
	c.mu.Lock()
	if len(c.cache) >= maxCache {
		clear(c.cache)
	}
	c.cache[key] = name
	c.mu.Unlock()
	return u.roles, nil
}

func (a *Authenticator) bearer(tok string) ([]Role, string, error) {
	if tok == "" {
		return nil, "", ErrUnauthenticated
	}
	sum := sha256.Sum256([]byte(tok))
	var roles []Role
	var name string
	// Every token is compared, in constant time, so the time taken does
	// not tell which one (if any) nearly matched.
	for _, t := range a.creds.Load().tokens {
		if subtle.ConstantTimeCompare(sum[:], t.sum) == 1 && roles == nil {
			roles, name = t.roles, t.name
		}
	}
	if roles == nil {
		return nil, "", ErrUnauthenticated
	}
	return roles, "token:" + name, nil
}

// Allowed reports whether roles include need; Open needs nothing,
// config is also granted by admin, and ConfigRead and RegistryRead by any
// role.
func Allowed(roles []Role, need Role) bool {
	switch need {
	case Open:
		return true
	case RoleConfig:
		return slices.Contains(roles, RoleConfig) || slices.Contains(roles, RoleAdmin)
	case ConfigRead, RegistryRead:
		return slices.ContainsFunc(roles, Role.valid)
	}
	return slices.Contains(roles, need)
}

// Describe names what grants need, for error messages.
func Describe(need Role) string {
	switch need {
	case RoleConfig:
		return "the config (or admin) role"
	case ConfigRead, RegistryRead:
		return "any role"
	}
	return "the " + string(need) + " role"
}
