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

// ParseCost is what parsing a pprof holds per byte of its uncompressed
// form: the parsed tables and the merged copy the write serialises.
const ParseCost = 12

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
	writer *Writer
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
	return &Handler{
		opts:   opts,
		bodies: httpbody.NewReader(opts.Limits.MaxRequestBytes),
		writer: NewWriter(WriterOptions{
			Profiles: opts.Profiles, Limits: opts.Limits, Ingest: opts.Ingest, Logger: opts.Logger, Now: opts.Now,
		}),
	}
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

	up, rj := h.decode(r, res)
	if rj == nil {
		if err := h.writer.Write(r.Context(), up); err != nil && !errors.As(err, &rj) {
			rj = reject(http.StatusServiceUnavailable, "", "%v", err)
		}
	}
	if rj == nil {
		w.WriteHeader(http.StatusOK)
		return
	}
	switch rj.Status {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		// A storage failure (no reason) is counted by the store.
		if rj.Reason != "" {
			h.opts.Ingest.Reject(signal, rj.Reason, 1)
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.opts.RetryAfter.Seconds()))))
	default:
		h.opts.Ingest.RejectFrom(signal, rj.Reason, src, 1)
	}
	http.Error(w, rj.Msg, rj.Status)
}

func (h *Handler) refuseBusy(w http.ResponseWriter) {
	h.opts.Ingest.Reject(signal, limits.ReasonOverloaded, 1)
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(h.opts.RetryAfter.Seconds()))))
	http.Error(w, ingest.ErrOverloaded.Error(), http.StatusTooManyRequests)
}

// decode reads the request into the profile to store; the Writer checks
// and stores it.
func (h *Handler) decode(r *http.Request, res *decodecost.Reservation) (Upload, *Rejection) {
	q := r.URL.Query()
	if f := q.Get("format"); f != "" && f != "pprof" {
		return Upload{}, reject(http.StatusUnsupportedMediaType, limits.ReasonUnsupported,
			"format %q is not supported: vigil takes pprof (format=pprof)", f)
	}
	app, labels, err := parseName(q.Get("name"))
	if err != nil {
		return Upload{}, reject(http.StatusBadRequest, limits.ReasonInvalidLabel, "%v", err)
	}
	// Before the body is read: a name past the limits costs nothing more.
	if rj := h.writer.CheckLabels(labels); rj != nil {
		return Upload{}, rj
	}

	body, err := h.bodies.ReadRequestThrough(r, func(rd io.Reader) io.Reader {
		return decodecost.ChargingReader(rd, res, 64<<10)
	})
	if err != nil {
		switch {
		case errors.Is(err, httpbody.ErrTooLarge), errors.Is(err, decodecost.ErrTooLarge):
			return Upload{}, reject(http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge,
				"request body exceeds %d bytes (limits.max_request_bytes)", h.bodies.Limit())
		case errors.Is(err, decodecost.ErrBusy):
			return Upload{}, reject(http.StatusTooManyRequests, limits.ReasonOverloaded, "%v", ingest.ErrOverloaded)
		case errors.Is(err, httpbody.ErrUnsupportedEncoding):
			return Upload{}, reject(http.StatusUnsupportedMediaType, limits.ReasonUndecodable, "%v", err)
		}
		return Upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "reading the body: %v", err)
	}
	defer body.Release()
	up, rj := readParts(body.Bytes(), r.Header.Get("Content-Type"))
	if rj != nil {
		return Upload{}, rj
	}

	// What parsing will hold, paid before it is taken.
	cost := res.Held() + ParseCost*int64(len(up.profile)+len(up.prev))
	if err := res.Resize(cost); err != nil {
		if errors.Is(err, decodecost.ErrTooLarge) {
			return Upload{}, reject(http.StatusRequestEntityTooLarge, limits.ReasonRequestTooLarge, "%v; send smaller profiles", err)
		}
		return Upload{}, reject(http.StatusTooManyRequests, limits.ReasonOverloaded, "%v", ingest.ErrOverloaded)
	}
	prof, err := parseProfile(up.profile, h.opts.Profile)
	if err == nil && up.prev != nil {
		var prev *profile.Profile
		if prev, err = parseProfile(up.prev, h.opts.Profile); err == nil {
			prof, err = delta(prof, prev)
		}
	}
	if err != nil {
		return Upload{}, parseRejection(err)
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
	from, err := parseUnix(q.Get("from"))
	if err != nil {
		return Upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "from: %v", err)
	}
	until, err := parseUnix(q.Get("until"))
	if err != nil {
		return Upload{}, reject(http.StatusBadRequest, limits.ReasonUndecodable, "until: %v", err)
	}
	return Upload{App: base, Kind: kind, Labels: labels, Start: from, End: until, Profile: prof}, nil
}

// readParts takes the profile parts out of a multipart body; any other
// body is one pprof.
func readParts(body []byte, contentType string) (upload, *Rejection) {
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
