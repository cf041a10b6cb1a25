package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	vstorage "github.com/vigil-observability/vigil/internal/storage"
)

// DefaultSeriesCacheSize bounds MetricsOptions.SeriesCacheSize: about 24
// bytes per entry, so the default costs some 50 MB at most.
const DefaultSeriesCacheSize = 2_000_000

// MetricsOptions configures the metric store.
type MetricsOptions struct {
	// Retention sets a TTL on the metric tables when the server has TTL
	// (19.6 and later); 0 keeps everything. Older servers rely on
	// DropBefore, which works on every server.
	Retention time.Duration
	// SeriesCacheSize bounds how many (series, day) pairs the store
	// remembers as already written to the series table
	// (DefaultSeriesCacheSize if 0). When full it forgets them all, which
	// only costs rewriting each live series once.
	SeriesCacheSize int
}

// MetricStore keeps Prometheus series in ClickHouse. It is a
// storage.AppendableV2 for ingest (remote_write, OTLP, rules) and a
// storage.Queryable for PromQL and the Prometheus API, so they run
// unchanged over ClickHouse. Several vigil processes may share one store.
//
// ClickHouse is append-only, so unlike the TSDB the store accepts samples
// out of order and duplicates of a (series, timestamp): a read returns the
// value committed last. Exemplars, metadata and start timestamps are not
// stored.
type MetricStore struct {
	c    *Client
	opts MetricsOptions

	mu      sync.Mutex
	written map[metricSeriesKey]struct{} // series index rows known to exist
}

// metricSeriesKey names one row of the series table.
type metricSeriesKey struct {
	id  uint64
	day int64 // days since the Unix epoch
}

var (
	_ vstorage.MetricStore = (*MetricStore)(nil)
	_ vstorage.Retainer    = (*MetricStore)(nil)
)

// OpenMetrics creates the metric tables when missing (on every shard of a
// cluster) and returns the store. It does not own c.
func OpenMetrics(ctx context.Context, c *Client, opts MetricsOptions) (*MetricStore, error) {
	if opts.SeriesCacheSize <= 0 {
		opts.SeriesCacheSize = DefaultSeriesCacheSize
	}
	if err := createMetricTables(ctx, c, opts.Retention); err != nil {
		return nil, metricsErr("create metric tables", err)
	}
	return &MetricStore{c: c, opts: opts, written: map[metricSeriesKey]struct{}{}}, nil
}

// SeriesID is the id under which the store keeps a series: a hash of its
// label set that is stable across processes and Prometheus versions, so
// every vigil process agrees on it.
func SeriesID(ls labels.Labels) uint64 { return labels.StableHash(ls) }

const metricMsPerDay = 24 * 60 * 60 * 1000

func metricDay(ms int64) int64 {
	d := ms / metricMsPerDay
	if ms%metricMsPerDay < 0 {
		d--
	}
	return d
}

func metricDayTime(day int64) time.Time { return time.Unix(day*86400, 0).UTC() }

// metricDayLiteral is a Date literal for SQL, independent of the server's time
// zone.
func metricDayLiteral(day int64) string {
	return "toDate('" + metricDayTime(day).Format(time.DateOnly) + "')"
}

// AppenderV2 returns an appender that buffers samples until Commit. It uses
// ctx for the inserts.
func (s *MetricStore) AppenderV2(ctx context.Context) storage.AppenderV2 {
	return &metricAppender{s: s, ctx: ctx, batchSeries: map[metricSeriesKey]struct{}{}}
}

// metricAppender buffers one transaction column by column, the shape the
// batch insert sends.
type metricAppender struct {
	s   *MetricStore
	ctx context.Context

	batchSeries map[metricSeriesKey]struct{}
	series      metricSeriesColumns
	samples     metricSampleColumns
	done        bool
}

type metricSeriesColumns struct {
	day    []time.Time
	id     []uint64
	metric []string
	names  [][]string
	values [][]string
	keys   []metricSeriesKey
}

type metricSampleColumns struct {
	day   []time.Time
	id    []uint64
	ts    []int64
	value []float64
	hist  []string
}

var errMetricAppenderDone = errors.New("clickhouse: appender used after Commit or Rollback")

// Append buffers one sample. It never reports out-of-order samples: the
// store keeps them (see MetricStore).
func (a *metricAppender) Append(_ storage.SeriesRef, ls labels.Labels, _, t int64, v float64, h *histogram.Histogram, fh *histogram.FloatHistogram, _ storage.AOptions) (storage.SeriesRef, error) {
	if a.done {
		return 0, errMetricAppenderDone
	}
	if ls.IsEmpty() {
		return 0, errors.New("clickhouse: append: a series without labels")
	}
	if dup, ok := ls.HasDuplicateLabelNames(); ok {
		return 0, fmt.Errorf("clickhouse: append %s: label %s appears twice", ls, dup)
	}
	id := SeriesID(ls)
	day := metricDay(t)
	key := metricSeriesKey{id, day}
	if _, ok := a.batchSeries[key]; !ok && !a.s.known(key) {
		a.batchSeries[key] = struct{}{}
		names := make([]string, 0, ls.Len())
		values := make([]string, 0, ls.Len())
		ls.Range(func(l labels.Label) {
			names = append(names, l.Name)
			values = append(values, l.Value)
		})
		a.series.day = append(a.series.day, metricDayTime(day))
		a.series.id = append(a.series.id, id)
		a.series.metric = append(a.series.metric, ls.Get(model.MetricNameLabel))
		a.series.names = append(a.series.names, names)
		a.series.values = append(a.series.values, values)
		a.series.keys = append(a.series.keys, key)
	}
	var enc string
	switch {
	case fh != nil:
		enc = encodeMetricHistogram(prompb.FromFloatHistogram(0, fh))
		v = 0
	case h != nil:
		enc = encodeMetricHistogram(prompb.FromIntHistogram(0, h))
		v = 0
	}
	a.samples.day = append(a.samples.day, metricDayTime(day))
	a.samples.id = append(a.samples.id, id)
	a.samples.ts = append(a.samples.ts, t)
	a.samples.value = append(a.samples.value, v)
	a.samples.hist = append(a.samples.hist, enc)
	return storage.SeriesRef(id), nil
}

func encodeMetricHistogram(h prompb.Histogram) string {
	b, err := h.Marshal()
	if err != nil {
		// Marshalling a valid message into a fresh buffer cannot fail.
		panic(fmt.Sprintf("clickhouse: encode histogram: %v", err))
	}
	return string(b)
}

func decodeMetricHistogram(enc string) (*histogram.Histogram, *histogram.FloatHistogram, error) {
	var h prompb.Histogram
	if err := h.Unmarshal([]byte(enc)); err != nil {
		return nil, nil, fmt.Errorf("clickhouse: decode histogram: %w", err)
	}
	if h.IsFloatHistogram() {
		return nil, h.ToFloatHistogram(), nil
	}
	return h.ToIntHistogram(), nil, nil
}

// Commit inserts the transaction's new series, then its samples: two batch
// inserts. A nil error means ClickHouse acknowledged every sample (in a
// cluster, on its shard). Errors meaning ClickHouse is down or overloaded
// wrap storage.ErrUnavailable, so that callers answer 503 and clients
// retry; a retry may write some samples twice, which reads hide.
func (a *metricAppender) Commit() error {
	if a.done {
		return errMetricAppenderDone
	}
	a.done = true
	if len(a.samples.id) == 0 {
		return nil
	}
	ctx := a.s.insertContext(a.ctx)
	if len(a.series.id) > 0 {
		err := a.s.insert(ctx, metricSeriesTable, "day, id, metric, label_names, label_values",
			a.series.day, a.series.id, a.series.metric, a.series.names, a.series.values)
		if err != nil {
			return err
		}
		a.s.remember(a.series.keys)
	}
	written := make([]uint64, len(a.samples.id))
	now := uint64(time.Now().UnixNano())
	for i := range written {
		written[i] = now
	}
	return a.s.insert(ctx, metricSamplesTable, "day, id, ts, value, histogram, written",
		a.samples.day, a.samples.id, a.samples.ts, a.samples.value, a.samples.hist, written)
}

// Rollback discards the buffered samples; nothing was sent.
func (a *metricAppender) Rollback() error {
	a.done = true
	a.series, a.samples = metricSeriesColumns{}, metricSampleColumns{}
	return nil
}

func (s *MetricStore) known(k metricSeriesKey) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.written[k]
	return ok
}

func (s *MetricStore) remember(keys []metricSeriesKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.written)+len(keys) > s.opts.SeriesCacheSize {
		clear(s.written)
	}
	for _, k := range keys {
		s.written[k] = struct{}{}
	}
}

// insertContext makes inserts into Distributed tables synchronous: the
// insert returns once every shard has its rows, so an acknowledged sample
// is on disk and not in a queue of the node that took the insert.
func (s *MetricStore) insertContext(ctx context.Context) context.Context {
	if s.c.Cluster == "" {
		return ctx
	}
	return clickhouse.Context(ctx, clickhouse.WithSettings(clickhouse.Settings{"insert_distributed_sync": 1}))
}

// insert sends one batch, column by column. Debian's 18.16 server only
// takes inserts as blocks with the columns named.
func (s *MetricStore) insert(ctx context.Context, table, columns string, cols ...any) error {
	what := "insert into " + table
	b, err := s.c.Conn.PrepareBatch(ctx, "INSERT INTO "+s.c.Table(table)+" ("+columns+")")
	if err != nil {
		return metricsErr(what, err)
	}
	for i, col := range cols {
		if err := b.Column(i).Append(col); err != nil {
			_ = b.Abort()
			return metricsErr(what, err)
		}
	}
	if err := b.Send(); err != nil {
		return metricsErr(what, err)
	}
	return nil
}

// StartTime returns the timestamp (ms) of the oldest sample, or
// math.MaxInt64 when there is none (as the TSDB does when empty).
func (s *MetricStore) StartTime() (int64, error) {
	ctx := context.Background()
	var day time.Time
	var n uint64
	// The series table has a row for every day with samples and is far
	// smaller than the samples table.
	if err := s.c.Conn.QueryRow(ctx, "SELECT min(day), count() FROM "+s.c.Table(metricSeriesTable)).Scan(&day, &n); err != nil {
		return 0, metricsErr("start time", err)
	}
	if n == 0 {
		return math.MaxInt64, nil
	}
	var minTS int64
	var m uint64
	q := fmt.Sprintf("SELECT min(ts), count() FROM %s WHERE day = %s", s.c.Table(metricSamplesTable), metricDayLiteral(metricDay(day.UnixMilli())))
	if err := s.c.Conn.QueryRow(ctx, q).Scan(&minTS, &m); err != nil {
		return 0, metricsErr("start time", err)
	}
	if m == 0 {
		// An index row without samples (a commit failed between the two
		// inserts): the day starts no later than its first millisecond.
		return day.UnixMilli(), nil
	}
	return minTS, nil
}

// metricsErr wraps a ClickHouse error, marking those that mean the server
// is unreachable or overloaded as storage.ErrUnavailable.
func metricsErr(what string, err error) error {
	if metricTransient(err) {
		return fmt.Errorf("clickhouse: %s: %w: %w", what, vstorage.ErrUnavailable, err)
	}
	return fmt.Errorf("clickhouse: %s: %w", what, err)
}

// metricTransientCodes are ClickHouse exception codes that go away by waiting.
var metricTransientCodes = map[int32]bool{
	159: true, // TIMEOUT_EXCEEDED
	160: true, // TOO_SLOW
	164: true, // READONLY (a replica in recovery)
	202: true, // TOO_MANY_SIMULTANEOUS_QUERIES
	203: true, // NO_FREE_CONNECTION
	209: true, // SOCKET_TIMEOUT
	210: true, // NETWORK_ERROR
	241: true, // MEMORY_LIMIT_EXCEEDED
	242: true, // TABLE_IS_READ_ONLY
	252: true, // TOO_MANY_PARTS
	279: true, // ALL_CONNECTION_TRIES_FAILED (a shard is down)
	285: true, // TOO_FEW_LIVE_REPLICAS
	319: true, // UNKNOWN_STATUS_OF_INSERT
	394: true, // QUERY_WAS_CANCELLED
	425: true, // SYSTEM_ERROR
}

// transient reports whether err means "try again later": the connection
// failed or the server refused for load. Anything else the server answers
// (a bad query, a type mismatch) is permanent.
func metricTransient(err error) bool {
	var ex *clickhouse.Exception
	if errors.As(err, &ex) {
		return metricTransientCodes[ex.Code]
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, clickhouse.ErrAcquireConnTimeout) || errors.Is(err, clickhouse.ErrConnectionClosed) ||
		errors.Is(err, context.DeadlineExceeded)
}
