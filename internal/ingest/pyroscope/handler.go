// Package pyroscope receives profiles over Pyroscope's ingest API as
// grafana/pyroscope-go and other Pyroscope clients send them (a multipart
// body of pprof parts, the application and its labels in the query), and
// plain pprof uploads to the same path.
package pyroscope

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"mime"
	"mime/multipart"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/pprof/profile"

	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
	"github.com/vigil-observability/vigil/internal/ingest/httpbody"
	"github.com/vigil-observability/vigil/internal/ingest/limits"
	"github.com/vigil-observability/vigil/internal/profiletype"
	"github.com/vigil-observability/vigil/internal/selfobs"
	"github.com/vigil-observability/vigil/internal/storage"
)

// Path is Pyroscope's ingest path; a client's server address is vigil's
// web address.
const Path = "/ingest"

const signal = ingest.SignalProfiles

// parseCost is what parsing a pprof holds per byte of its uncompressed
// form: the parsed tables and the merged copy the write serialises.
const parseCost = 12

// Options configures the handler.
type Options struct {
	// Profiles stores what is accepted; a nil return means durable.
	// Required.
	Profiles storage.ProfileWriter
	// Limits: MaxRequestBytes bounds the body (after any Content-Encoding),
	// MaxPastAge and MaxFutureSkew the times, MaxLabelsPerSeries and
	// MaxLabelValueLength the labels of the name.
	Limits limits.Limits
	// Profile bounds each pprof part.
	Profile ProfileLimits
	// Ingest counts received and rejected profiles; nil: not counted.
	Ingest *selfobs.IngestMetrics
	// Admission bounds the requests served at once; share the other
	// receivers'. Nil: a default of its own.
	Admission *ingest.Admission
	// DecodeBudget bounds the memory of requests being decoded; share the
	// other receivers'. Nil: a default of its own.
	DecodeBudget *decodecost.Budget
	// RetryAfter is suggested to clients refused while busy; zero: 2s.
	RetryAfter time.Duration
	Logger     *slog.Logger
	Now        func() time.Time
}

// Handler serves POST Path.
type Handler struct {
	opts   Options
	bodies *httpbody.Reader
}

// NewHandler returns the handler; it panics without opts.Profiles.
func NewHandler(opts Options) *Handler {
	if opts.Profiles == nil {
		panic("pyroscope: Options.Profiles is required")
	}
	opts.Limits = opts.Limits.WithDefaults()
	opts.Profile = opts.Profile.WithDefaults()
	if opts.Admission == nil {
		opts.Admission = ingest.NewAdmission(ingest.AdmissionOptions{})
	}
	if opts.DecodeBudget == nil {
		opts.DecodeBudget = decodecost.NewBudget(decodecost.DefaultSize)
	}
	if opts.RetryAfter <= 0 {
		opts.RetryAfter = 2 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Handler{opts: opts, bodies: httpbody.NewReader(opts.Limits.MaxRequestBytes)}
}

// upload is one request's parts.
type upload struct {
	profile, prev []byte
	config        map[string]sampleTypeConfig
}

// sampleTypeConfig is the part of a sample_type_config entry vigil reads.
type sampleTypeConfig struct {
	DisplayName string `json:"display-name"`
}

// rejection is a refused request: its status, reason and message.
type rejection struct {
	code   int
	reason string
	msg    string
}

func (r *rejection) Error() string { return r.msg }

func reject(code int, reason, format string, args ...any) *rejection {
	return &rejection{code: code, reason: reason, msg: fmt.Sprintf(format, args...)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "method not allowed; POST a profile", http.StatusMethodNotAllowed)
		return
	}
	src := "client " + clientHost(r)
	rel, err := h.opts.Admission.Admit()
	if err != nil {
		h.refuseBusy(w)
		return
	}
	defer rel()
	res := h.opts.DecodeBudget.Start()
	defer res.Release()
	h.opts.Ingest.Receive(signal, 1)

	ps, rj := h.decode(r, res)
	if rj == nil {
		rj = h.write(r, ps)
	}
	if rj == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	switch rj.code {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		// A storage failure (no reason) is counted by the store.
		if rj.reason != "" {
			h.opts.Ingest.Reject(signal, rj.reason, 1)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.opts.RetryAfter.Seconds()))))
	default:
		h.opts.Ingest.RejectFrom(signal, rj.reason, src, 1)
	}
	http.Error(w, rj.msg, rj.code)
}

func (h *Handler) refuseBusy(w http.ResponseWriter) {
	h.opts.Ingest.Reject(signal, limits.ReasonOverloaded, 1)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.opts.RetryAfter.Seconds()))))
	http.Error(w, ingest.ErrOverloaded.Error(), http.StatusTooManyRequests)
}

func (h *Handler) write(r *http.Request, ps []storage.Profile) *rejection {
	err := h.opts.Profiles.WriteProfiles(r.Context(), ps)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ingest.ErrOverloaded):
		return reject(http.StatusTooManyRequests, limits.ReasonOverloaded, "%v", ingest.ErrOverloaded)
	case errors.Is(err, storage.ErrInvalidProfile):
		return reject(http.StatusBadRequest, limits.ReasonUndecodable, "%v", err)
	}
	h.opts.Logger.LogAttrs(r.Context(), slog.LevelWarn, "profile not stored, client asked to retry",
		slog.String("service", ps[0].Service), slog.Any("err", err))
	return reject(http.StatusServiceUnavailable, "", "%v", ingest.ErrUnavailable)
}

// decode reads and checks the request, returning the profiles to store:
// one per service its samples are labelled with (see splitByService).
func (h *Handler) decode(r *http.Request, res *decodecost.Reservation) ([]storage.Profile, *rejection) {
	q := r.URL.Query()
	if f := q.Get("format"); f != "" && f != "pprof" {
		return nil, reject(http.StatusUnsupportedMediaType, limits.ReasonUnsupported,
			"format %q is not supported: vigil takes pprof (format=pprof)", f)
	}
	app, labels, err := parseName(q.Get("name"))
	if err != nil {
		return nil, reject(http.StatusBadRequest, limits.ReasonInvalidLabel, "%v", err)
	}
	if rj := h.checkLabels(labels); rj != nil {
		return nil, rj
	}

	body, err := h.bodies.ReadRequestThrough(r, func(rd io.Reader) io.Reader {
		return decodecost.ChargingReader(rd, res, 64<<10)
	})
	if err != nil {
		switch {
		case errors.Is(err, httpbody.ErrTooLarge), errors.Is(err, decodecost.ErrTooLarge):
			return nil, reject(http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge,
				"request body exceeds %d bytes (limits.max_request_bytes)", h.bodies.Limit())
		case errors.Is(err, decodecost.ErrBusy):
			return nil, reject(http.StatusTooManyRequests, limits.ReasonOverloaded, "%v", ingest.ErrOverloaded)
		case errors.Is(err, httpbody.ErrUnsupportedEncoding):
			return nil, reject(http.StatusUnsupportedMediaType, limits.ReasonUndecodable, "%v", err)
		}
		return nil, reject(http.StatusBadRequest, limits.ReasonUndecodable, "reading the body: %v", err)
	}
	defer body.Release()
	up, rj := readParts(body.Bytes(), r.Header.Get("Content-Type"))
	if rj != nil {
		return nil, rj
	}

	// What parsing will hold, paid before it is taken.
	cost := res.Held() + parseCost*int64(len(up.profile)+len(up.prev))
	if err := res.Resize(cost); err != nil {
		if errors.Is(err, decodecost.ErrTooLarge) {
			return nil, reject(http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge, "%v; send smaller profiles", err)
		}
		return nil, reject(http.StatusTooManyRequests, limits.ReasonOverloaded, "%v", ingest.ErrOverloaded)
	}
	prof, err := parseProfile(up.profile, h.opts.Profile)
	if err == nil && up.prev != nil {
		var prev *profile.Profile
		if prev, err = parseProfile(up.prev, h.opts.Profile); err == nil {
			prof, err = delta(prof, prev)
		}
	}
	if err != nil {
		if errors.Is(err, errTooLarge) {
			return nil, reject(http.StatusRequestEntityTooLarge, limits.ReasonProfileTooLarge, "%v", err)
		}
		return nil, reject(http.StatusBadRequest, limits.ReasonUndecodable, "%v", err)
	}

	base, kind := profiletype.KindSuffix(app)
	if kind == "" {
		for _, c := range up.config {
			if k := profiletype.KindOfDisplayName(c.DisplayName); k != "" {
				kind = k
				break
			}
		}
	}
	kind, err = profiletype.Check(kind, sampleTypes(prof))
	if err != nil {
		return nil, reject(http.StatusBadRequest, limits.ReasonWrongSampleTypes, "%v", err)
	}

	start, end, rj := h.timeRange(q, prof)
	if rj != nil {
		return nil, rj
	}
	service := base
	if s := labels["service_name"]; s != "" {
		service = s
	}
	delete(labels, "service_name")

	// Uncompressed: the store decomposes it at once, and gzipping it
	// again was a quarter of the CPU an upload cost.
	parts := splitByService(prof, service)
	ps := make([]storage.Profile, 0, len(parts))
	for _, part := range parts {
		var buf bytes.Buffer
		if err := part.prof.WriteUncompressed(&buf); err != nil {
			return nil, reject(http.StatusBadRequest, limits.ReasonUndecodable, "re-encoding the profile: %v", err)
		}
		ps = append(ps, storage.Profile{
			Service: part.service, Kind: kind, Start: start, End: end,
			Labels: labels, Data: buf.Bytes(),
		})
	}
	return ps, nil
}

// checkLabels bounds the name's labels, dropping the reserved ones
// (__session_id__ and the like, which name a process, not a series).
func (h *Handler) checkLabels(labels map[string]string) *rejection {
	for k := range labels {
		if strings.HasPrefix(k, "__") {
			delete(labels, k)
		}
	}
	if len(labels) > h.opts.Limits.MaxLabelsPerSeries {
		return reject(http.StatusBadRequest, limits.ReasonTooManyLabels, "%d labels, the limit is %d", len(labels), h.opts.Limits.MaxLabelsPerSeries)
	}
	for k, v := range labels {
		if len(k) > h.opts.Limits.MaxLabelNameLength {
			return reject(http.StatusBadRequest, limits.ReasonLabelNameTooLong, "label name %.32q... is longer than %d bytes", k, h.opts.Limits.MaxLabelNameLength)
		}
		if len(v) > h.opts.Limits.MaxLabelValueLength {
			return reject(http.StatusBadRequest, limits.ReasonLabelValueTooLong, "the value of label %s is longer than %d bytes", k, h.opts.Limits.MaxLabelValueLength)
		}
	}
	return nil
}

// readParts takes the profile parts out of a multipart body; any other
// body is one pprof.
func readParts(body []byte, contentType string) (upload, *rejection) {
	mediaType, params, err := mime.ParseMediaType(contentType)
	if err != nil || !strings.HasPrefix(mediaType, "multipart/") {
		return upload{profile: body}, nil
	}
	var up upload
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "reading the multipart body: %v", err)
		}
		// The body is in memory already and bounded: reading a part
		// whole costs at most its size again.
		b, err := io.ReadAll(part)
		if err != nil {
			return upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "reading part %q: %v", part.FormName(), err)
		}
		switch part.FormName() {
		case "profile":
			up.profile = b
		case "prev_profile":
			if len(b) > 0 {
				up.prev = b
			}
		case "sample_type_config":
			if err := json.Unmarshal(b, &up.config); err != nil {
				return upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "sample_type_config is not JSON: %v", err)
			}
		}
	}
	if up.profile == nil {
		return upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "the multipart body has no profile part")
	}
	return up, nil
}

// timeRange reads from and until (unix seconds, milliseconds or
// nanoseconds, told apart by size), else the profile's own time and
// duration, else the last ten seconds; and checks them against the
// retention and the clock.
func (h *Handler) timeRange(q map[string][]string, p *profile.Profile) (start, end time.Time, rj *rejection) {
	now := h.opts.Now()
	get := func(k string) string {
		if v := q[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	from, err := parseUnix(get("from"))
	if err != nil {
		return start, end, reject(http.StatusBadRequest, limits.ReasonUndecodable, "from: %v", err)
	}
	until, err := parseUnix(get("until"))
	if err != nil {
		return start, end, reject(http.StatusBadRequest, limits.ReasonUndecodable, "until: %v", err)
	}
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
	case end.Before(now.Add(-h.opts.Limits.MaxPastAge)):
		return start, end, reject(http.StatusBadRequest, limits.ReasonTimestampTooOld, "the profile ended at %s, older than the retention", end.Format(time.RFC3339))
	case start.After(now.Add(h.opts.Limits.MaxFutureSkew)):
		return start, end, reject(http.StatusBadRequest, limits.ReasonTimestampInFuture, "the profile starts at %s, in the future", start.Format(time.RFC3339))
	}
	return start.UTC(), end.UTC(), nil
}

// parseUnix reads a unix time in seconds, milliseconds or nanoseconds:
// below 1e11 seconds (until the year 5138), below 1e14 milliseconds, else
// nanoseconds. "" is the zero time.
func parseUnix(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return time.Time{}, fmt.Errorf("%q is not a unix time in seconds, milliseconds or nanoseconds", s)
	}
	switch {
	case v < 1e11:
		return time.Unix(v, 0), nil
	case v < 1e14:
		return time.UnixMilli(v), nil
	}
	return time.Unix(0, v), nil
}

func clientHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
