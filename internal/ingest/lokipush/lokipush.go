// Package lokipush decodes the bodies of Loki push requests
// (POST /loki/api/v1/push), so that agents written for Loki (Promtail,
// Alloy, winston-loki, pino-loki and the like) can send their logs to vigil
// unchanged.
//
// Two encodings are understood, told apart by Content-Type:
//
//   - application/x-protobuf (and an empty Content-Type, which Loki treats
//     the same way): a logproto.PushRequest, snappy block-compressed (not
//     the framed snappy stream format). It is decoded field by field, with
//     unknown fields skipped, so no generated code is needed.
//   - application/json: {"streams":[{"stream":{...},"values":[[ns, line],
//     [ns, line, {metadata}]]}]}.
//
// Content-Encoding (gzip, zstd...) is not this package's business: the
// receiver reads the body with internal/ingest/httpbody first, which also
// caps its size. Decode caps the snappy-decoded size itself, reading the
// length snappy puts in front of a block before allocating anything.
//
// Rejections are partial, as Loki's are: a stream whose labels do not
// parse, or whose protobuf bytes are malformed, is dropped with its
// entries; an entry that is too long or outside the time window is dropped
// alone; everything else is kept. Result counts the dropped entries per
// Reason so that the receiver can answer 400 with the first reason and
// count the rejections. Only a body whose outer framing cannot be read at
// all fails the whole request, with one of the sentinel errors.
package lokipush

import (
	"errors"
	"fmt"
	"mime"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

var (
	// ErrUnsupportedContentType means the Content-Type is neither protobuf
	// nor JSON; receivers answer 415.
	ErrUnsupportedContentType = errors.New("lokipush: unsupported content type")
	// ErrTooLarge means the decoded body would exceed Options.MaxDecodedBytes;
	// receivers answer 413.
	ErrTooLarge = errors.New("lokipush: decoded body too large")
	// ErrMalformed means the body cannot be decoded at all: corrupt or
	// truncated snappy, protobuf or JSON whose outer structure is broken.
	// Receivers answer 400.
	ErrMalformed = errors.New("lokipush: malformed push request")
	// ErrRejected is wrapped by Result.Err when some streams or entries
	// were dropped.
	ErrRejected = errors.New("lokipush: entries rejected")
)

// Reason says why entries were dropped. Its values are stable: receivers
// use them as metric label values.
type Reason string

// The reasons for dropping entries.
const (
	ReasonBadLabels      Reason = "bad_labels"
	ReasonTooManyLabels  Reason = "too_many_labels"
	ReasonMalformed      Reason = "malformed_stream"
	ReasonLineTooLong    Reason = "line_too_long"
	ReasonTooOld         Reason = "too_old"
	ReasonTooNew         Reason = "too_new"
	ReasonTooManyEntries Reason = "too_many_entries"
	ReasonBadTimestamp   Reason = "bad_timestamp"
)

// Options are the limits a Decoder enforces. A zero field takes the
// default given beside it; a negative one turns the check off.
type Options struct {
	// MaxDecodedBytes bounds the snappy-decoded protobuf and the JSON body
	// (default 16 MiB).
	MaxDecodedBytes int
	// MaxLineBytes bounds one log line (default 256 KiB, Loki's default).
	MaxLineBytes int
	// MaxLabelsPerStream bounds a stream's labels and an entry's
	// structured metadata pairs, each (default 30, Loki's default).
	MaxLabelsPerStream int
	// MaxEntries bounds the entries kept from one request (default
	// 250,000). Because an empty entry is two bytes of protobuf but tens of
	// bytes in memory, this and not MaxDecodedBytes is what bounds the
	// memory a request of tiny entries takes.
	MaxEntries int
	// MaxAge drops entries older than Now-MaxAge (default: no check).
	MaxAge time.Duration
	// MaxFuture drops entries newer than Now+MaxFuture (default: no check).
	MaxFuture time.Duration
	// Now returns the time the window is measured from (default time.Now).
	Now func() time.Time
}

// Defaults of Options.
const (
	DefaultMaxDecodedBytes    = 16 << 20
	DefaultMaxLineBytes       = 256 << 10
	DefaultMaxLabelsPerStream = 30
	DefaultMaxEntries         = 250_000
)

func (o Options) withDefaults() Options {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxDecodedBytes, DefaultMaxDecodedBytes)
	def(&o.MaxLineBytes, DefaultMaxLineBytes)
	def(&o.MaxLabelsPerStream, DefaultMaxLabelsPerStream)
	def(&o.MaxEntries, DefaultMaxEntries)
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Stream is one stream of a push request: its label set and entries.
type Stream struct {
	// Labels is sorted by name, names unique.
	Labels  []Label
	Entries []Entry
}

// Entry is one log line.
type Entry struct {
	Time time.Time
	Line string
	// Metadata is the entry's structured metadata, in the order sent.
	Metadata []Label
}

// Result is what Decode kept of a request, and what it dropped.
type Result struct {
	Streams []Stream
	// Entries counts the entries kept.
	Entries int
	// Repaired counts the strings (lines, label names and values) whose
	// invalid UTF-8 was replaced with U+FFFD. Invalid bytes are repaired,
	// not refused, because agents tail files in whatever encoding they
	// were written and losing a line hurts more than a mangled byte; the
	// repair keeps every later consumer (JSON answers, the stores) valid.
	// JSON bodies are repaired by encoding/json itself and not counted.
	Repaired int

	rejected map[Reason]*Rejection
}

// Rejection tells how many entries were dropped for one reason, with the
// first such drop described.
type Rejection struct {
	Reason  Reason
	Entries int
	Example string
}

// Rejections lists the drops, ordered by reason.
func (r *Result) Rejections() []Rejection {
	out := make([]Rejection, 0, len(r.rejected))
	for _, rj := range r.rejected {
		out = append(out, *rj)
	}
	slices.SortFunc(out, func(a, b Rejection) int { return strings.Compare(string(a.Reason), string(b.Reason)) })
	return out
}

// Rejected counts the dropped entries of all reasons.
func (r *Result) Rejected() int {
	n := 0
	for _, rj := range r.rejected {
		n += rj.Entries
	}
	return n
}

// Err returns nil when nothing was dropped, or an error wrapping
// ErrRejected that names the reasons, for the body of a 400 answer.
func (r *Result) Err() error {
	rjs := r.Rejections()
	if len(rjs) == 0 {
		return nil
	}
	var b strings.Builder
	for i, rj := range rjs {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%d %s (%s)", rj.Entries, rj.Reason, rj.Example)
	}
	return fmt.Errorf("%w: %s", ErrRejected, b.String())
}

// reject counts n dropped entries; the example is formatted only for the
// first drop of a reason, since a flood of bad entries should not cost a
// string each.
func (r *Result) reject(reason Reason, n int, format string, args ...any) {
	if n == 0 {
		return // a bad stream without entries loses nothing
	}
	if r.rejected == nil {
		r.rejected = make(map[Reason]*Rejection)
	}
	rj, ok := r.rejected[reason]
	if !ok {
		const maxExample = 200
		ex := fmt.Sprintf(format, args...)
		if len(ex) > maxExample {
			ex = strings.ToValidUTF8(ex[:maxExample], "") + "..."
		}
		rj = &Rejection{Reason: reason, Example: ex}
		r.rejected[reason] = rj
	}
	rj.Entries += n
}

// Decoder decodes push request bodies under fixed limits. It holds no
// mutable state and is safe for concurrent use.
type Decoder struct {
	opts Options
}

// NewDecoder returns a Decoder enforcing opts.
func NewDecoder(opts Options) *Decoder {
	return &Decoder{opts: opts.withDefaults()}
}

// Decode decodes body, already freed of its Content-Encoding, according to
// contentType. It returns ErrUnsupportedContentType, ErrTooLarge or
// ErrMalformed (wrapped) when nothing could be read; otherwise a Result,
// whose Err tells whether anything was dropped.
func (d *Decoder) Decode(body []byte, contentType string) (*Result, error) {
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return nil, fmt.Errorf("%w: %q", ErrUnsupportedContentType, contentType)
		}
	}
	switch mt {
	case "", "application/x-protobuf", "application/protobuf":
		return d.decodeProto(body)
	case "application/json":
		return d.decodeJSON(body)
	}
	return nil, fmt.Errorf("%w: %q", ErrUnsupportedContentType, contentType)
}

// batch carries the state of one Decode call.
type batch struct {
	d      *Decoder
	res    *Result
	now    time.Time
	oldest time.Time // zero: no check
	newest time.Time // zero: no check
}

func (d *Decoder) newBatch() *batch {
	b := &batch{d: d, res: &Result{}, now: d.opts.Now()}
	if d.opts.MaxAge > 0 {
		b.oldest = b.now.Add(-d.opts.MaxAge)
	}
	if d.opts.MaxFuture > 0 {
		b.newest = b.now.Add(d.opts.MaxFuture)
	}
	return b
}

// labels parses and checks a stream's label string; on failure the stream's
// entries are counted as dropped by the caller.
func (b *batch) labels(s string) ([]Label, Reason, error) {
	ls, err := ParseLabels(s)
	if err != nil {
		return nil, ReasonBadLabels, err
	}
	return b.checkLabels(ls)
}

func (b *batch) checkLabels(ls []Label) ([]Label, Reason, error) {
	if max := b.d.opts.MaxLabelsPerStream; max > 0 && len(ls) > max {
		return nil, ReasonTooManyLabels, fmt.Errorf("stream has %d labels, more than %d", len(ls), max)
	}
	for i := range ls {
		ls[i].Name = b.valid(ls[i].Name)
		ls[i].Value = b.valid(ls[i].Value)
	}
	return ls, "", nil
}

// keep checks one entry against the limits and reports whether it is kept.
// Only a kept entry has its invalid UTF-8 repaired, to spare the work on
// entries that are dropped anyway.
func (b *batch) keep(streamLabels string, e *Entry) bool {
	o := &b.d.opts
	switch {
	case o.MaxLineBytes > 0 && len(e.Line) > o.MaxLineBytes:
		b.res.reject(ReasonLineTooLong, 1, "stream %s: line of %d bytes, more than %d", streamLabels, len(e.Line), o.MaxLineBytes)
	case !b.oldest.IsZero() && e.Time.Before(b.oldest):
		b.res.reject(ReasonTooOld, 1, "stream %s: timestamp %s older than %s", streamLabels, e.Time.UTC().Format(time.RFC3339Nano), o.MaxAge)
	case !b.newest.IsZero() && e.Time.After(b.newest):
		b.res.reject(ReasonTooNew, 1, "stream %s: timestamp %s more than %s ahead", streamLabels, e.Time.UTC().Format(time.RFC3339Nano), o.MaxFuture)
	case o.MaxLabelsPerStream > 0 && len(e.Metadata) > o.MaxLabelsPerStream:
		b.res.reject(ReasonTooManyLabels, 1, "stream %s: entry has %d structured metadata pairs, more than %d", streamLabels, len(e.Metadata), o.MaxLabelsPerStream)
	case o.MaxEntries > 0 && b.res.Entries >= o.MaxEntries:
		b.res.reject(ReasonTooManyEntries, 1, "more than %d entries in one request", o.MaxEntries)
	default:
		e.Line = b.valid(e.Line)
		// A repair can lengthen a line (U+FFFD takes three bytes where an
		// invalid one took one): the limit holds for what is kept.
		if o.MaxLineBytes > 0 && len(e.Line) > o.MaxLineBytes {
			b.res.reject(ReasonLineTooLong, 1, "stream %s: line of %d bytes once its invalid UTF-8 is replaced, more than %d", streamLabels, len(e.Line), o.MaxLineBytes)
			return false
		}
		for i := range e.Metadata {
			e.Metadata[i].Name = b.valid(e.Metadata[i].Name)
			e.Metadata[i].Value = b.valid(e.Metadata[i].Value)
		}
		b.res.Entries++
		return true
	}
	return false
}

func (b *batch) valid(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	b.res.Repaired++
	return strings.ToValidUTF8(s, "\uFFFD")
}
