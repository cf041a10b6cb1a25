package lokiapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"iter"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"

	"github.com/vigil-observability/vigil/internal/logql"
	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/attrenc"
)

// LogStore is what the Loki API reads: the streams of stored logs, then
// their records. Every storage.SpanLogStore satisfies it.
type LogStore interface {
	storage.LogStreamReader
	FindLogs(ctx context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error]
}

// Label names vigil adds to what the store holds.
const (
	// serviceLabel is on every stream, as Loki 3 puts it there: the
	// record's service, or unknownService.
	serviceLabel   = "service_name"
	unknownService = "unknown_service"
	// levelLabel is the structured metadata Loki 3 derives from a line's
	// severity, and Grafana's log volume groups by.
	levelLabel = "detected_level"
)

// Source reads a storage.SpanLogStore as LogQL streams. A stream is one
// resource: its labels are the resource attributes that are stream
// labels (see isStreamLabel), named as Loki names the attributes of OTLP
// logs (every character a label name cannot hold becomes '_':
// service.name is service_name), values as text. Structured metadata is
// the record's attributes, its trace and span id (trace_id, span_id),
// detected_level from its severity, then the resource's other
// attributes. Resources whose labels come out equal are one stream.
type Source struct {
	store LogStore
}

var _ logql.Source = (*Source)(nil)

// NewSource returns a Source over store.
func NewSource(store LogStore) *Source { return &Source{store: store} }

// Streams implements logql.Source.
func (s *Source) Streams(ctx context.Context, matchers []*logql.Matcher, start, end time.Time) ([]logql.Stream, error) {
	q := storage.LogQuery{Start: start, End: end}
	for _, m := range matchers {
		// The service is a column every backend filters on cheaply; the
		// matcher is checked again below like every other.
		if m.Name == serviceLabel && m.Op == logql.MatchEqual && m.Value != unknownService {
			q.Service = m.Value
		}
	}
	found, err := s.store.LogStreams(ctx, q)
	if err != nil {
		return nil, err
	}
	var out []logql.Stream
	keys := make(map[uint64][]int) // labels hash → indexes into out
	var ids []streamID
next:
	for _, ls := range found {
		lbls := streamLabels(ls.Service, ls.Resource)
		for _, m := range matchers {
			if !m.Matches(lbls.Get(m.Name)) {
				continue next
			}
		}
		h := lbls.Hash()
		merged := false
		for _, i := range keys[h] {
			if labels.Equal(out[i].Labels, lbls) {
				out[i].Entries += ls.Entries
				out[i].Bytes += ls.Bytes
				ids[i].Keys = append(ids[i].Keys, ls.Key)
				if ids[i].Service != ls.Service {
					ids[i].Service = ""
				}
				merged = true
				break
			}
		}
		if !merged {
			keys[h] = append(keys[h], len(out))
			out = append(out, logql.Stream{Labels: lbls, Entries: ls.Entries, Bytes: ls.Bytes})
			id := streamID{Keys: []string{ls.Key}}
			// Only where the label is the service column: an attribute
			// such as service_name on a resource without service.name
			// makes the label too.
			if ls.Service != "" && lbls.Get(serviceLabel) == ls.Service {
				id.Service = ls.Service
			}
			ids = append(ids, id)
		}
	}
	for i := range out {
		id, err := json.Marshal(ids[i])
		if err != nil {
			return nil, fmt.Errorf("lokiapi: encoding stream id: %w", err)
		}
		out[i].ID = string(id)
	}
	slices.SortFunc(out, func(a, b logql.Stream) int { return labels.Compare(a.Labels, b.Labels) })
	return out, nil
}

// Entries implements logql.Source.
func (s *Source) Entries(ctx context.Context, q logql.EntryQuery) iter.Seq2[logql.Entry, error] {
	return func(yield func(logql.Entry, error) bool) {
		if len(q.Streams) == 0 {
			return
		}
		var keys []string
		byHash := make(map[uint64][]int)
		service := ""
		for i, st := range q.Streams {
			var id streamID
			if err := json.Unmarshal([]byte(st.ID), &id); err != nil {
				yield(logql.Entry{}, fmt.Errorf("lokiapi: stream id %q: %w", st.ID, err))
				return
			}
			keys = append(keys, id.Keys...)
			h := st.Labels.Hash()
			byHash[h] = append(byHash[h], i)
			if i == 0 || id.Service == service {
				service = id.Service
			} else {
				service = ""
			}
		}
		limit := q.Limit
		if limit <= 0 {
			limit = math.MaxInt32
		}
		sq := storage.LogQuery{
			Streams: keys, Start: q.Start, End: q.End,
			Contains: q.Contains, Forward: q.Forward, Limit: limit,
			// The keys alone select the same records, but a store can
			// test the service first: the embedded store compares its
			// service column before it tests the terms on the body,
			// instead of testing them on every record of every service
			// in the range (a one-service search over 24 h of 50 services
			// was 15 times slower without it).
			Service: service,
		}
		for rec, err := range findPaged(ctx, s.store, sq, q.Want) {
			if err != nil {
				yield(logql.Entry{}, err)
				return
			}
			lbls := streamLabels(rec.Service, rec.ResourceAttributes)
			idx := -1
			for _, i := range byHash[lbls.Hash()] {
				if labels.Equal(q.Streams[i].Labels, lbls) {
					idx = i
					break
				}
			}
			if idx < 0 {
				// A resource whose labels changed meaning between the two
				// reads cannot happen with stored data; skip rather than
				// attribute the line to the wrong stream.
				continue
			}
			ts := rec.Timestamp
			if ts.IsZero() {
				ts = rec.ObservedTimestamp
			}
			if !yield(logql.Entry{Stream: idx, Timestamp: ts.UnixNano(), Line: rec.Body, Metadata: metadata(rec)}, nil) {
				return
			}
		}
	}
}

// streamID is a stream's handle (logql.Stream.ID): the store's keys of
// the resources it merges and, when all of them are one service and the
// service_name label is that service, the service.
type streamID struct {
	Keys    []string `json:"k"`
	Service string   `json:"s,omitempty"`
}

// Pages of findPaged: each is this many times the one before, up to
// maxWantPage.
const (
	wantPageGrowth = 4
	maxWantPage    = 1 << 20
)

// findPaged yields q's records as store.FindLogs does, asking for want
// records first and then for pages growing fourfold after the last one
// yielded, when want is below q.Limit: the engine's hint of how many it
// keeps, so that a store stops reading once it has found that many
// instead of reading a first page of its own size.
func findPaged(ctx context.Context, store LogStore, q storage.LogQuery, want int) iter.Seq2[storage.LogRecord, error] {
	if want <= 0 || want >= q.Limit {
		return store.FindLogs(ctx, q)
	}
	return func(yield func(storage.LogRecord, error) bool) {
		left, page := q.Limit, want
		for left > 0 {
			pq := q
			pq.Limit = min(page, left)
			n := 0
			for rec, err := range store.FindLogs(ctx, pq) {
				if !yield(rec, err) || err != nil {
					return
				}
				n++
				q.After = rec.Cursor
			}
			if n < pq.Limit {
				return // the store has no more
			}
			if q.After == "" {
				// A store without cursors: the rest from one read, past
				// what was yielded.
				skip := n
				for rec, err := range store.FindLogs(ctx, q) {
					if skip > 0 && err == nil {
						skip--
						continue
					}
					if !yield(rec, err) || err != nil {
						return
					}
				}
				return
			}
			left -= n
			page = min(page*wantPageGrowth, maxWantPage)
		}
	}
}

// indexedResource are the OpenTelemetry resource attributes Loki makes
// stream labels of by default when it takes OTLP logs; it keeps the
// others as structured metadata, so that a process id or an SDK version
// does not make streams of its own or crowd Grafana's label browser.
var indexedResource = map[string]bool{
	"service.name": true, "service.namespace": true, "service.instance.id": true,
	"deployment.environment": true, "deployment.environment.name": true,
	"cloud.region": true, "cloud.availability_zone": true,
	"k8s.cluster.name": true, "k8s.namespace.name": true, "k8s.pod.name": true,
	"k8s.container.name": true, "container.name": true, "k8s.replicaset.name": true,
	"k8s.deployment.name": true, "k8s.statefulset.name": true, "k8s.daemonset.name": true,
	"k8s.cronjob.name": true, "k8s.job.name": true,
}

// isStreamLabel reports whether a resource attribute is a stream label:
// one Loki indexes by default, or one without a dot, which no
// OpenTelemetry semantic convention names and which is what the labels a
// Loki or Elasticsearch agent sends become (job, app, filename...).
func isStreamLabel(key string) bool {
	return indexedResource[key] || !strings.Contains(key, ".")
}

// streamLabels names a resource's stream-label attributes as labels. When
// two attributes come out as one name the first, in key order, wins.
func streamLabels(service string, res map[string]any) labels.Labels {
	keys := make([]string, 0, len(res))
	for k := range res {
		if isStreamLabel(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	b := labels.NewScratchBuilder(len(res) + 1)
	seen := make(map[string]bool, len(res)+1)
	for _, k := range keys {
		name := LabelName(k)
		if seen[name] {
			continue
		}
		v := valueString(res[k])
		if v == "" {
			continue // an empty label is no label, in Loki as in Prometheus
		}
		seen[name] = true
		b.Add(name, v)
	}
	if !seen[serviceLabel] {
		if service == "" {
			service = unknownService
		}
		b.Add(serviceLabel, service)
	}
	b.Sort()
	return b.Labels()
}

// metadata is a record's structured metadata.
func metadata(rec storage.LogRecord) labels.Labels {
	b := labels.NewScratchBuilder(len(rec.Attributes) + len(rec.ResourceAttributes) + 3)
	seen := make(map[string]bool, len(rec.Attributes)+len(rec.ResourceAttributes)+3)
	add := func(name, v string) {
		if v == "" || seen[name] {
			return
		}
		seen[name] = true
		b.Add(name, v)
	}
	if !rec.TraceID.IsEmpty() {
		add("trace_id", rec.TraceID.String())
	}
	if !rec.SpanID.IsEmpty() {
		add("span_id", rec.SpanID.String())
	}
	if lvl := detectedLevel(rec); lvl != "" {
		add(levelLabel, lvl)
	}
	keys := make([]string, 0, len(rec.Attributes))
	for k := range rec.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(LabelName(k), valueString(rec.Attributes[k]))
	}
	keys = keys[:0]
	for k := range rec.ResourceAttributes {
		if !isStreamLabel(k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		add(LabelName(k), valueString(rec.ResourceAttributes[k]))
	}
	b.Sort()
	return b.Labels()
}

// detectedLevel is the level Loki 3 would detect: from the severity
// number's band, else from the severity text.
func detectedLevel(rec storage.LogRecord) string {
	switch storage.SeverityOf(rec.SeverityNumber) {
	case storage.SeverityTrace:
		return "trace"
	case storage.SeverityDebug:
		return "debug"
	case storage.SeverityInfo:
		return "info"
	case storage.SeverityWarn:
		return "warn"
	case storage.SeverityError:
		return "error"
	case storage.SeverityFatal:
		return "fatal"
	}
	if sev, ok := storage.ParseSeverity(rec.SeverityText); ok && sev != storage.SeverityUnset {
		return strings.ToLower(sev.String())
	}
	return ""
}

// LabelName turns an attribute key into a label name: every character
// outside [a-zA-Z0-9_] becomes '_', and a leading digit gets a '_' before
// it, as Loki names the attributes of OTLP logs.
func LabelName(k string) string {
	if k == "" {
		return "_"
	}
	ok := k[0] < '0' || k[0] > '9'
	for i := 0; ok && i < len(k); i++ {
		c := k[i]
		ok = c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
	}
	if ok {
		return k
	}
	var sb strings.Builder
	if k[0] >= '0' && k[0] <= '9' {
		sb.WriteByte('_')
	}
	for _, r := range k {
		if r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			sb.WriteRune(r)
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

// valueString is an attribute value as label text: strings as they are,
// numbers and booleans as Go prints them, bytes in base64 (as OTLP/JSON
// does), arrays and maps as JSON.
func valueString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64)
	case bool:
		return strconv.FormatBool(x)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case nil:
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

var _ logql.Counter = (*Source)(nil)

// CountEntries implements logql.Counter when the store counts (storage.LogCounter)
// and every name of q.Metadata is one it can count by exactly:
// detected_level, from the severity, or a name without '_', which only
// the attribute of that very key becomes (any other key's name would hold
// a '_' where its dots or other characters were).
func (s *Source) CountEntries(ctx context.Context, q logql.CountQuery) ([]logql.EntryCount, error) {
	counter, ok := s.store.(storage.LogCounter)
	if !ok {
		return nil, fmt.Errorf("%w: the store does not count", logql.ErrCannotCount)
	}
	var attrs []string
	for _, name := range q.Metadata {
		if name != levelLabel && (strings.Contains(name, "_") || name == "" || name[0] >= '0' && name[0] <= '9') {
			return nil, fmt.Errorf("%w: by %s", logql.ErrCannotCount, name)
		}
		if name != levelLabel {
			attrs = append(attrs, name)
		}
	}
	streamOf := map[string]int{}
	var keys []string
	for i, st := range q.Streams {
		var sid streamID
		if err := json.Unmarshal([]byte(st.ID), &sid); err != nil {
			return nil, fmt.Errorf("lokiapi: stream id %q: %w", st.ID, err)
		}
		for _, id := range sid.Keys {
			streamOf[id] = i
			keys = append(keys, id)
		}
	}
	counts, err := counter.CountLogs(ctx, storage.LogCountQuery{
		Streams: keys, Origin: q.Origin, Step: q.Step, Start: q.Origin, End: q.End,
		Contains: q.Contains, NotContains: q.NotContains, Attributes: attrs,
	})
	if err != nil {
		return nil, err
	}
	type key struct {
		stream int
		bin    int64
		meta   string
	}
	index := map[key]int{}
	var out []logql.EntryCount
	for _, c := range counts {
		i, ok := streamOf[c.Stream]
		if !ok || len(c.Attributes) != len(attrs) {
			return nil, fmt.Errorf("lokiapi: the store counted stream %q with %d attributes, not one asked for with %d", c.Stream, len(c.Attributes), len(attrs))
		}
		meta := make([]string, len(q.Metadata))
		a := 0
		for j, name := range q.Metadata {
			if name == levelLabel {
				meta[j] = detectedLevel(storage.LogRecord{SeverityNumber: firstOf(c.Severity), SeverityText: c.SeverityText})
				continue
			}
			if raw := c.Attributes[a]; raw != "" {
				v := pcommon.NewValueEmpty()
				if err := attrenc.DecodeValue(raw, v); err != nil {
					return nil, fmt.Errorf("lokiapi: attribute %s counted as %q: %w", name, raw, err)
				}
				meta[j] = valueString(v.AsRaw())
			}
			a++
		}
		k := key{i, c.Bin, strings.Join(meta, "\xff")}
		if at, seen := index[k]; seen {
			out[at].Entries += c.Entries
			out[at].Bytes += c.Bytes
			continue
		}
		index[k] = len(out)
		out = append(out, logql.EntryCount{Stream: i, Bin: c.Bin, Metadata: meta, Entries: c.Entries, Bytes: c.Bytes})
	}
	return out, nil
}

// firstOf is the lowest severity number of a band.
func firstOf(s storage.Severity) plog.SeverityNumber {
	lo, _ := s.Range()
	return lo
}
