package configcentre

import (
	"cmp"
	"crypto/md5"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxContentBytes is the largest content an item or a gray may hold. A
// configuration value bigger than this belongs in a file or an object
// store, and every version is kept in memory and in the log.
const MaxContentBytes = 1 << 20

// Bounds of the state, so that a flood of writes cannot grow it without
// end: an item's history holds at most MaxVersions versions (past that
// the oldest are dropped down to KeepVersions, but for the formal
// version and the active gray's); the change list at most MaxChanges
// events (past that the oldest are dropped down to KeepChanges); and
// there are at most MaxItems items (a put of a new item past that is
// refused).
const (
	MaxVersions  = 1000
	KeepVersions = 900
	MaxChanges   = 100_000
	KeepChanges  = 90_000
	MaxItems     = 10_000
)

// maxNameBytes bounds each of namespace, group and key.
const maxNameBytes = 256

// Sentinel errors. Each is a refusal of the request, which leaves the state
// as it was; handlers map them to HTTP statuses with errors.Is.
var (
	// ErrInvalid: the request is malformed (bad name, bad match, bad
	// content type, content that does not parse as its type).
	ErrInvalid = errors.New("invalid")
	// ErrTooLarge: the content is over MaxContentBytes.
	ErrTooLarge = errors.New("content too large")
	// ErrNotFound: no such item, version or gray.
	ErrNotFound = errors.New("not found")
	// ErrConflict: the item already has an active gray.
	ErrConflict = errors.New("conflict")
)

// ContentType is how an item's content is checked on write.
type ContentType string

// The content types.
const (
	TypeText ContentType = "text"
	TypeJSON ContentType = "json"
	TypeYAML ContentType = "yaml"
)

// Key addresses an item.
type Key struct {
	Namespace string `json:"namespace"`
	Group     string `json:"group"`
	Key       string `json:"key"`
}

func (k Key) String() string { return k.Namespace + "/" + k.Group + "/" + k.Key }

// Validate checks that each part is a usable path segment.
func (k Key) Validate() error {
	for _, p := range []struct{ name, v string }{{"namespace", k.Namespace}, {"group", k.Group}, {"key", k.Key}} {
		switch {
		case p.v == "":
			return fmt.Errorf("%w: empty %s", ErrInvalid, p.name)
		case len(p.v) > maxNameBytes:
			return fmt.Errorf("%w: %s longer than %d bytes", ErrInvalid, p.name, maxNameBytes)
		case strings.ContainsAny(p.v, "/\x00") || p.v == "." || p.v == "..":
			return fmt.Errorf("%w: %s %q is not a path segment", ErrInvalid, p.name, p.v)
		}
	}
	return nil
}

// CheckContent refuses content over the size limit, and JSON or YAML
// content that does not parse, with the parser's reason.
func CheckContent(t ContentType, content string) error {
	if len(content) > MaxContentBytes {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, len(content), MaxContentBytes)
	}
	switch t {
	case TypeText:
	case TypeJSON:
		var v any
		dec := json.NewDecoder(strings.NewReader(content))
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("%w: content is not JSON: %v", ErrInvalid, err)
		}
		if dec.More() {
			return fmt.Errorf("%w: content is not JSON: data after the first value", ErrInvalid)
		}
	case TypeYAML:
		dec := yaml.NewDecoder(strings.NewReader(content))
		for {
			var v any
			err := dec.Decode(&v)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return fmt.Errorf("%w: content is not YAML: %v", ErrInvalid, err)
			}
		}
	default:
		return fmt.Errorf("%w: content type %q: use text, json or yaml", ErrInvalid, t)
	}
	return nil
}

// MD5 is the hex MD5 of content, the digest watchers compare.
func MD5(content string) string {
	s := md5.Sum([]byte(content))
	return hex.EncodeToString(s[:])
}

// Version is one published content of an item.
type Version struct {
	Version     uint64      `json:"version"`
	Content     string      `json:"content"`
	ContentType ContentType `json:"content_type"`
	MD5         string      `json:"md5"`
	// Gray is true for a version published as a gray rollout's content.
	Gray bool `json:"gray"`
	// Action is what published it: put, gray, promote or rollback.
	Action  string    `json:"action"`
	Author  string    `json:"author"`
	Message string    `json:"message"`
	Time    time.Time `json:"time"`
	// Principal is the credential the write authenticated with.
	Principal string `json:"principal,omitempty"`
	// From is the version a rollback republished, or the gray version a
	// promote made formal; 0 otherwise.
	From uint64 `json:"from,omitempty"`
	// Match and Guard are a gray version's, as its gray was started.
	Match *Match          `json:"match,omitempty"`
	Guard json.RawMessage `json:"guard,omitempty"`
}

// Match is which instances a gray targets: exactly one of its fields is
// set.
type Match struct {
	// Labels: instances whose labels include every one of these (the
	// instance id is also the label "instance").
	Labels map[string]string `json:"labels,omitempty"`
	// Instances: these instance ids.
	Instances []string `json:"instances,omitempty"`
	// Percent: instances whose id hashes (FNV-1a, 32 bits) below Percent
	// out of 100. The hash depends on the id alone, so an instance keeps
	// its cohort across restarts, and raising the percentage only adds
	// instances.
	Percent *int `json:"percent,omitempty"`
}

// Validate checks that exactly one kind of match is given and in range.
func (m Match) Validate() error {
	n := 0
	if len(m.Labels) > 0 {
		n++
	}
	if len(m.Instances) > 0 {
		n++
	}
	if m.Percent != nil {
		n++
		if *m.Percent < 0 || *m.Percent > 100 {
			return fmt.Errorf("%w: percent %d is outside 0-100", ErrInvalid, *m.Percent)
		}
	}
	if n != 1 {
		return fmt.Errorf("%w: match needs exactly one of labels, instances or percent", ErrInvalid)
	}
	for _, id := range m.Instances {
		if id == "" {
			return fmt.Errorf("%w: empty instance id in match", ErrInvalid)
		}
	}
	return nil
}

// Matches reports whether the instance with this id and labels is in the
// gray. An instance that gives no id is never in an instance-list or
// percentage gray.
func (m Match) Matches(instance string, labels map[string]string) bool {
	switch {
	case len(m.Labels) > 0:
		for name, want := range m.Labels {
			got, ok := labels[name]
			if name == "instance" && !ok && instance != "" {
				got, ok = instance, true
			}
			if !ok || got != want {
				return false
			}
		}
		return true
	case len(m.Instances) > 0:
		for _, id := range m.Instances {
			if id == instance {
				return instance != ""
			}
		}
		return false
	case m.Percent != nil:
		return instance != "" && InstanceBucket(instance) < *m.Percent
	}
	return false
}

// InstanceBucket is the instance's place, 0 to 99, in percentage grays.
func InstanceBucket(instance string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(instance))
	return int(h.Sum32() % 100)
}

// Gray is an item's active gray rollout.
type Gray struct {
	// Version is the version its content was published as.
	Version uint64 `json:"version"`
	Match   Match  `json:"match"`
	// Guard is kept as given (JSON); package guard reads and evaluates it.
	Guard   json.RawMessage `json:"guard,omitempty"`
	Author  string          `json:"author"`
	Message string          `json:"message"`
	Started time.Time       `json:"started"`
}

// Item is one configuration item as its history and its gray.
type Item struct {
	Key Key `json:"key"`
	// Versions, oldest first.
	Versions []Version `json:"versions"`
	// Formal is the version instances outside the gray get (0 while only
	// a gray exists, which cannot happen: a gray needs a formal version).
	Formal uint64 `json:"formal"`
	Gray   *Gray  `json:"gray,omitempty"`
	// Compacted counts the versions dropped from the history past
	// MaxVersions.
	Compacted uint64 `json:"compacted,omitempty"`
}

// version returns the version numbered n.
func (it *Item) version(n uint64) (Version, bool) {
	// Versions are numbered from 1 without gaps until the history is
	// compacted, so n is usually its index+1; after, they are still in
	// order.
	if n == 0 {
		return Version{}, false
	}
	if n <= uint64(len(it.Versions)) && it.Versions[n-1].Version == n {
		return it.Versions[n-1], true
	}
	i, ok := slices.BinarySearchFunc(it.Versions, n, func(v Version, n uint64) int { return cmp.Compare(v.Version, n) })
	if !ok {
		return Version{}, false
	}
	return it.Versions[i], true
}

// VersionOf returns the version numbered n, if the history holds it.
func (it *Item) VersionOf(n uint64) (Version, bool) { return it.version(n) }

// next is the number the item's next version takes.
func (it *Item) next() uint64 {
	if len(it.Versions) == 0 {
		return 1
	}
	return it.Versions[len(it.Versions)-1].Version + 1
}

// compact drops the oldest versions once the history holds more than
// MaxVersions, down to KeepVersions, keeping the formal version and the
// active gray's however old. It returns how many it dropped. The history
// is copied, so what was handed out before keeps its versions.
func (it *Item) compact() uint64 {
	if len(it.Versions) <= MaxVersions {
		return 0
	}
	cut := len(it.Versions) - KeepVersions
	kept := make([]Version, 0, KeepVersions+2)
	for _, v := range it.Versions[:cut] {
		if v.Version == it.Formal || it.Gray != nil && v.Version == it.Gray.Version {
			kept = append(kept, v)
		}
	}
	dropped := uint64(cut - len(kept))
	kept = append(kept, it.Versions[cut:]...)
	it.Versions = kept
	it.Compacted += dropped
	return dropped
}

// Resolved is what one instance should use.
type Resolved struct {
	Content     string      `json:"content"`
	ContentType ContentType `json:"content_type"`
	Version     uint64      `json:"version"`
	MD5         string      `json:"md5"`
	Gray        bool        `json:"gray"`
}

// resolve is the value for an instance: the gray's when it matches.
func (it *Item) resolve(instance string, labels map[string]string) Resolved {
	n := it.Formal
	if it.Gray != nil && it.Gray.Match.Matches(instance, labels) {
		n = it.Gray.Version
	}
	v, _ := it.version(n)
	return Resolved{Content: v.Content, ContentType: v.ContentType, Version: v.Version, MD5: v.MD5, Gray: n != it.Formal}
}

// Change is one change event: every write to the configuration centre
// leaves one.
type Change struct {
	Time time.Time `json:"time"`
	// Kind is "config" for every event the machine records; "deploy" for
	// a service's version change (package changes derives those from the
	// stored metrics; they never enter the machine's log).
	Kind string `json:"kind"`
	// Action: put, gray, promote, abort or rollback; "deploy" for a
	// deploy.
	Action  string `json:"action"`
	Item    string `json:"item"`
	Version uint64 `json:"version"`
	Author  string `json:"author"`
	Message string `json:"message"`
	// Principal is the credential the write authenticated with.
	Principal string `json:"principal,omitempty"`
	// A deploy's service (its job), instance (when known), the version
	// it left and the version it runs now.
	Service  string `json:"service,omitempty"`
	Instance string `json:"instance,omitempty"`
	From     string `json:"from,omitempty"`
	To       string `json:"to,omitempty"`
}

// KindConfig and KindDeploy are Change.Kind's values.
const (
	KindConfig = "config"
	KindDeploy = "deploy"
)
