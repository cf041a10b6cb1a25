package pyroscope

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/profiletype"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage"
)

// WriterOptions configure a Writer.
type WriterOptions struct {
	// Profiles stores what is accepted; a nil return means durable.
	// Required.
	Profiles storage.ProfileWriter
	// Limits: MaxPastAge and MaxFutureSkew bound the times,
	// MaxLabelsPerSeries and the label lengths the labels.
	Limits limits.Limits
	// Ingest counts the stored profiles; nil: not counted.
	Ingest *selfobs.IngestMetrics
	Logger *slog.Logger
	Now    func() time.Time
}

// Writer checks decoded profiles against the limits and stores them. It
// is the one path every profile takes, pushed to Handler or pulled from
// targets (package profilescrape), so both are bounded and refused alike.
type Writer struct {
	opts WriterOptions
}

// NewWriter returns a Writer; it panics without opts.Profiles.
func NewWriter(opts WriterOptions) *Writer {
	if opts.Profiles == nil {
		panic("pyroscope: WriterOptions.Profiles is required")
	}
	opts.Limits = opts.Limits.WithDefaults()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Writer{opts: opts}
}

// Upload is one decoded profile and what its sender said of it.
type Upload struct {
	// App is the service the profile is filed under. A service_name
	// label overrides it, and samples with the pprof label service_name
	// are filed under the service they name (splitByService).
	App string
	// Kind is one of storage's Profile* kinds; "" tells it from the
	// sample types (which cannot tell mutex from block).
	Kind string
	// Labels are the profile's series labels; Write may change the map.
	Labels map[string]string
	// Start and End are the range the profile covers; both zero take the
	// profile's own time and duration, else the last ten seconds.
	Start, End time.Time
	Profile    *profile.Profile
}

// Rejection is a refused profile: the reason it is counted under in
// vigil_rejected_total{signal="profiles"} (empty for a storage failure,
// which the store counts) and the HTTP status a pusher gets for it.
type Rejection struct {
	Status int
	Reason string
	Msg    string
}

func (r *Rejection) Error() string { return r.Msg }

// Retryable reports whether sending the profile again later may succeed:
// vigil was busy or its storage failed, the profile itself is fine.
func (r *Rejection) Retryable() bool {
	return r.Status == http.StatusTooManyRequests || r.Status == http.StatusServiceUnavailable
}

func reject(code int, reason, format string, args ...any) *Rejection {
	return &Rejection{Status: code, Reason: reason, Msg: fmt.Sprintf(format, args...)}
}

// ParseProfile decodes one pprof, gzipped or not, within lim: a
// decompressed size or table counts past lim fail with a Rejection of
// reason profile_too_large before the profile is parsed, anything that is
// not a pprof with one of undecodable.
func ParseProfile(b []byte, lim ProfileLimits) (*profile.Profile, error) {
	p, err := parseProfile(b, lim.WithDefaults())
	if err != nil {
		return nil, parseRejection(err)
	}
	return p, nil
}

// parseRejection is the Rejection for a failure of parseProfile or delta.
func parseRejection(err error) *Rejection {
	if errors.Is(err, errTooLarge) {
		return reject(http.StatusRequestEntityTooLarge, limits.ReasonProfileTooLarge, "%v", err)
	}
	return reject(http.StatusBadRequest, limits.ReasonUndecodable, "%v", err)
}

// Write checks u (labels, kind against the sample types, range) and
// stores it, split by the services its samples name. It returns nil once
// the profiles are durable, else a *Rejection. It counts what it stored;
// what was received and refused the caller counts, since it knows from
// whom.
func (w *Writer) Write(ctx context.Context, u Upload) error {
	if rj := w.CheckLabels(u.Labels); rj != nil {
		return rj
	}
	kind, err := profiletype.Check(u.Kind, sampleTypes(u.Profile))
	if err != nil {
		return reject(http.StatusBadRequest, limits.ReasonWrongSampleTypes, "%v", err)
	}
	start, end, rj := w.timeRange(u.Start, u.End, u.Profile)
	if rj != nil {
		return rj
	}
	service := u.App
	if s := u.Labels["service_name"]; s != "" {
		service = s
	}
	delete(u.Labels, "service_name")

	// Uncompressed: the store decomposes it at once, and gzipping it
	// again was a quarter of the CPU an upload cost.
	parts := splitByService(u.Profile, service)
	ps := make([]storage.Profile, 0, len(parts))
	for _, part := range parts {
		var buf bytes.Buffer
		if err := part.prof.WriteUncompressed(&buf); err != nil {
			return reject(http.StatusBadRequest, limits.ReasonUndecodable, "re-encoding the profile: %v", err)
		}
		ps = append(ps, storage.Profile{
			Service: part.service, Kind: kind, Start: start, End: end,
			Labels: u.Labels, Data: buf.Bytes(),
		})
	}
	err = w.opts.Profiles.WriteProfiles(ctx, ps)
	switch {
	case err == nil:
		if m := w.opts.Ingest; m != nil {
			m.Stored.WithLabelValues(signal).Add(float64(len(ps)))
		}
		return nil
	case errors.Is(err, ingest.ErrOverloaded):
		return reject(http.StatusTooManyRequests, limits.ReasonOverloaded, "%v", ingest.ErrOverloaded)
	case errors.Is(err, storage.ErrInvalidProfile):
		return reject(http.StatusBadRequest, limits.ReasonUndecodable, "%v", err)
	}
	w.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "profile not stored, to be sent again",
		slog.String("service", ps[0].Service), slog.Any("err", err))
	return reject(http.StatusServiceUnavailable, "", "%v", ingest.ErrUnavailable)
}

// CheckLabels bounds labels, dropping the reserved ones (__session_id__
// and the like, which name a process, not a series).
func (w *Writer) CheckLabels(labels map[string]string) *Rejection {
	for k := range labels {
		if strings.HasPrefix(k, "__") {
			delete(labels, k)
		}
	}
	lim := w.opts.Limits
	if len(labels) > lim.MaxLabelsPerSeries {
		return reject(http.StatusBadRequest, limits.ReasonTooManyLabels, "%d labels, the limit is %d", len(labels), lim.MaxLabelsPerSeries)
	}
	for k, v := range labels {
		if len(k) > lim.MaxLabelNameLength {
			return reject(http.StatusBadRequest, limits.ReasonLabelNameTooLong, "label name %.32q... is longer than %d bytes", k, lim.MaxLabelNameLength)
		}
		if len(v) > lim.MaxLabelValueLength {
			return reject(http.StatusBadRequest, limits.ReasonLabelValueTooLong, "the value of label %s is longer than %d bytes", k, lim.MaxLabelValueLength)
		}
	}
	return nil
}

// timeRange is [from, until] when both are given, else the profile's own
// time and duration, else the last ten seconds; checked against the
// retention and the clock.
func (w *Writer) timeRange(from, until time.Time, p *profile.Profile) (start, end time.Time, rj *Rejection) {
	now := w.opts.Now()
	switch {
	case !from.IsZero() && !until.IsZero():
		start, end = from, until
	case p.TimeNanos > 0:
		start = time.Unix(0, p.TimeNanos)
		end = start.Add(time.Duration(max(p.DurationNanos, 0)))
	default:
		start, end = now.Add(-10*time.Second), now
	}
	switch {
	case end.Before(start):
		return start, end, reject(http.StatusBadRequest, limits.ReasonUndecodable, "until (%s) is before from (%s)", end.Format(time.RFC3339), start.Format(time.RFC3339))
	case end.Before(now.Add(-w.opts.Limits.MaxPastAge)):
		return start, end, reject(http.StatusBadRequest, limits.ReasonTimestampTooOld, "the profile ended at %s, older than the retention", end.Format(time.RFC3339))
	case start.After(now.Add(w.opts.Limits.MaxFutureSkew)):
		return start, end, reject(http.StatusBadRequest, limits.ReasonTimestampInFuture, "the profile starts at %s, in the future", start.Format(time.RFC3339))
	}
	return start.UTC(), end.UTC(), nil
}
