package promremote

import (
	"bytes"
	"math"
	"net/http"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// labelFields encodes labels as the label fields of a TimeSeries.
func labelFields(t *testing.T, lps []prompb.Label) []byte {
	t.Helper()
	raw, err := (&prompb.TimeSeries{Labels: lps}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// cachedHandler returns a handler over a real TSDB and its series cache.
func cachedHandler(t *testing.T, size int) (http.Handler, *seriesCache, storage.Queryable) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	h := NewHandler(Options{Appendable: db, SeriesCacheSize: size}).(*handler)
	return h, h.cache, db
}

func mustPost(t *testing.T, h http.Handler, req *prompb.WriteRequest) {
	t.Helper()
	if w := post(h, encode(t, req), nil); w.Code != http.StatusNoContent {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
}

func oneSample(lps []prompb.Label, ts int64, v float64) prompb.TimeSeries {
	return prompb.TimeSeries{Labels: lps, Samples: []prompb.Sample{{Timestamp: ts, Value: v}}}
}

// A hash collision must be a miss: the cache confirms an entry by its
// labels, never by the hash alone.
func TestSeriesCacheCollision(t *testing.T) {
	c := newSeriesCache(64)
	a := series("m", "job", "a")
	b := series("m", "job", "b")
	longer := series("m", "job", "a", "zone", "z")
	c.put(42, cacheEntry{ls: labels.FromStrings("__name__", "m", "job", "a"), ref: 7})

	if e, ok := c.get(42, labelFields(t, a)); !ok || e.ref != 7 {
		t.Fatalf("get(a) = %v, %v; want ref 7", e, ok)
	}
	for name, lps := range map[string][]prompb.Label{"other value": b, "extra label": longer, "prefix": a[:1]} {
		if e, ok := c.get(42, labelFields(t, lps)); ok {
			t.Errorf("%s: colliding hash returned %v", name, e.ls)
		}
	}
}

// The cache stays within about its size, keeping the series that are
// still being sent.
func TestSeriesCacheBounded(t *testing.T) {
	c := newSeriesCache(seriesCacheShards * 2 * 4) // 4 per generation and shard
	e := cacheEntry{ls: labels.FromStrings("__name__", "m")}
	for h := range uint64(10_000) {
		c.put(h, e)
	}
	if n := c.len(); n > seriesCacheShards*2*4 {
		t.Fatalf("%d entries, want at most %d", n, seriesCacheShards*2*4)
	}
}

// Through the handler: a series is cached after its first request, the
// next requests append by reference, and series differing by one label
// value or by an extra label are each stored as themselves.
func TestHandlerSeriesCache(t *testing.T) {
	h, cache, db := cachedHandler(t, 0)
	now := time.Now().UnixMilli()
	a := series("cache_total", "job", "a")
	b := series("cache_total", "job", "b")
	ab := series("cache_total", "job", "a", "zone", "z")
	for i := range int64(3) {
		mustPost(t, h, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
			oneSample(a, now+i, float64(i)), oneSample(b, now+i, 10+float64(i)), oneSample(ab, now+i, 20+float64(i)),
		}})
	}
	if n := cache.len(); n != 3 {
		t.Errorf("cache holds %d series, want 3", n)
	}
	got := readSeries(t, db, "cache_total")
	want := map[string][]point{
		`{__name__="cache_total", job="a"}`:           {{t: now, v: 0}, {t: now + 1, v: 1}, {t: now + 2, v: 2}},
		`{__name__="cache_total", job="b"}`:           {{t: now, v: 10}, {t: now + 1, v: 11}, {t: now + 2, v: 12}},
		`{__name__="cache_total", job="a", zone="z"}`: {{t: now, v: 20}, {t: now + 1, v: 21}, {t: now + 2, v: 22}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored %v\nwant %v", got, want)
	}
}

// Labels sent unsorted are stored sorted and not cached (their fields
// would never compare equal to the sorted labels); repeated names are
// refused every time, not only before being cached.
func TestHandlerSeriesCacheUnsortedAndInvalid(t *testing.T) {
	h, cache, db := cachedHandler(t, 0)
	now := time.Now().UnixMilli()
	unsorted := []prompb.Label{{Name: "job", Value: "u"}, {Name: "__name__", Value: "unsorted_total"}}
	dup := []prompb.Label{{Name: "__name__", Value: "dup_total"}, {Name: "job", Value: "x"}, {Name: "job", Value: "y"}}
	for i := range int64(2) {
		mustPost(t, h, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSample(unsorted, now+i, 1)}})
		w := post(h, encode(t, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSample(dup, now+i, 1)}}), nil)
		if w.Code != http.StatusBadRequest {
			t.Fatalf("repeated label name, request %d: status %d, want 400", i, w.Code)
		}
	}
	if n := cache.len(); n != 0 {
		t.Errorf("cache holds %d series, want 0", n)
	}
	if got := readSeries(t, db, "unsorted_total")[`{__name__="unsorted_total", job="u"}`]; len(got) != 2 {
		t.Errorf("unsorted series has %d samples, want 2", len(got))
	}
	if got := readSeries(t, db, "dup_total"); len(got) != 0 {
		t.Errorf("series with a repeated label name stored: %v", got)
	}
}

// A cached reference outlives its series when the head drops it; the next
// sample must still be stored, under the series' labels, and the cache
// must learn the new reference.
func TestHandlerSeriesCacheStaleRef(t *testing.T) {
	db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{LikeEmbedded: true})
	hd := NewHandler(Options{Appendable: db}).(*handler)
	now := time.Now()
	old := now.Add(-3 * time.Minute).UnixMilli()
	a := series("stale_total", "job", "a")
	other := series("other_total", "job", "o")
	mustPost(t, hd, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSample(a, old, 1)}})
	fields := labelFields(t, a)
	before, ok := hd.cache.get(hashLabelFields(fields), fields)
	if !ok || before.ref == 0 {
		t.Fatalf("series not cached after its first request: %v %v", before, ok)
	}

	// Another series keeps the head's time range going; truncating the
	// head below it drops stale_total (its only sample is older).
	mustPost(t, hd, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSample(other, now.Add(-time.Minute).UnixMilli(), 1)}})
	if err := db.Head().Truncate(now.Add(-2 * time.Minute).UnixMilli()); err != nil {
		t.Fatal(err)
	}
	if got := readSeries(t, db, "stale_total"); len(got) != 0 {
		t.Fatalf("the head still holds stale_total after truncation: %v", got)
	}

	latest := now.UnixMilli()
	mustPost(t, hd, &prompb.WriteRequest{Timeseries: []prompb.TimeSeries{oneSample(a, latest, 2)}})
	got := readSeries(t, db, "stale_total")
	want := map[string][]point{`{__name__="stale_total", job="a"}`: {{t: latest, v: 2}}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("after the head dropped the series: stored %v, want %v", got, want)
	}
	after, ok := hd.cache.get(hashLabelFields(fields), fields)
	if !ok || after.ref == before.ref {
		t.Errorf("cache holds ref %d (ok %v), want the new reference, not %d", after.ref, ok, before.ref)
	}
}

// The hand decoder must decode what prompb decodes, and refuse what it
// refuses.
func TestBatchMatchesPrompb(t *testing.T) {
	now := time.Now().UnixMilli()
	h := nativeHistogram()
	h.Timestamp = now
	full := &prompb.WriteRequest{
		Timeseries: []prompb.TimeSeries{
			oneSample(series("a_total", "job", "a"), now, 1),
			{Labels: []prompb.Label{{Name: "z", Value: "1"}, {Name: "__name__", Value: "unsorted"}}, Samples: []prompb.Sample{{Timestamp: now, Value: 2}, {Timestamp: now + 1, Value: 3}}},
			{Labels: series("h"), Histograms: []prompb.Histogram{h}},
			{Labels: series("e_total"), Samples: []prompb.Sample{{Timestamp: now, Value: 4}}, Exemplars: []prompb.Exemplar{{Labels: series("x"), Value: 1, Timestamp: now}}},
			{Labels: series("long", "v", string(make([]byte, 300)))},
			{},
		},
		Metadata: []prompb.MetricMetadata{{Type: prompb.MetricMetadata_COUNTER, MetricFamilyName: "a_total", Help: "h"}},
	}
	raw, err := full.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// An unknown field in a Sample and in the request are skipped.
	withUnknown := protowire.AppendTag(append([]byte(nil), raw...), 15, protowire.VarintType)
	withUnknown = protowire.AppendVarint(withUnknown, 1)

	// A label field whose tag is written in two bytes (0x8a 0x00, valid
	// protobuf) is decoded the general way.
	label := []byte{0x0a, 0x01, 'n', 0x12, 0x01, 'v'}
	overlong := lengthPrefixed(append(append([]byte{0x8a, 0x00, byte(len(label))}, label...), 0x0a, byte(len(label)), 0x0a, 0x01, 'a', 0x12, 0x01, 'b'))

	for name, body := range map[string][]byte{"request": raw, "unknown field": withUnknown, "overlong label tag": overlong} {
		compareDecoders(t, name, body)
	}
	for name, body := range map[string][]byte{
		"truncated":              raw[:len(raw)-3],
		"series as varint":       {0x08, 0x01},
		"sample value as varint": lengthPrefixed([]byte{0x12, 0x02, 0x08, 0x01}),
		"label name as varint":   lengthPrefixed([]byte{0x0a, 0x02, 0x08, 0x01}),
	} {
		compareDecoders(t, name, body)
	}
}

// compareDecoders checks that batch.unmarshal and prompb agree on body.
func compareDecoders(t *testing.T, name string, body []byte) {
	t.Helper()
	var want prompb.WriteRequest
	wantErr := want.Unmarshal(body)
	b := &batch{raw: body}
	gotErr := b.unmarshal(nil)
	if (wantErr == nil) != (gotErr == nil) {
		t.Fatalf("%s: prompb error %v, batch error %v", name, wantErr, gotErr)
	}
	if wantErr != nil {
		return
	}
	if len(b.series) != len(want.Timeseries) {
		t.Fatalf("%s: %d series, want %d", name, len(b.series), len(want.Timeseries))
	}
	sb := labels.NewScratchBuilder(4)
	for i, ws := range b.series {
		wts := want.Timeseries[i]
		if ws.full >= 0 {
			got, _ := b.full[ws.full].Marshal()
			want, _ := wts.Marshal()
			if !bytes.Equal(got, want) {
				t.Errorf("%s: series %d = %v, want %v", name, i, b.full[ws.full], wts)
			}
			continue
		}
		wantLs := wts.ToLabels(&sb, nil)
		gotLs, _ := toLabels(&sb, ws.labels)
		if !labels.Equal(gotLs, wantLs) {
			t.Errorf("%s: series %d labels %v, want %v", name, i, gotLs, wantLs)
		}
		got := b.samples[ws.first:ws.end]
		same := len(got) == len(wts.Samples)
		for j := 0; same && j < len(got); j++ {
			// Compared bit for bit (NaN), without prompb's unknown fields.
			same = got[j].Timestamp == wts.Samples[j].Timestamp && math.Float64bits(got[j].Value) == math.Float64bits(wts.Samples[j].Value)
		}
		if !same {
			t.Errorf("%s: series %d samples %v, want %v", name, i, got, wts.Samples)
		}
	}
	if len(b.metadata) != len(want.Metadata) {
		t.Errorf("%s: %d metadata, want %d", name, len(b.metadata), len(want.Metadata))
	}
}

// FuzzBatchMatchesPrompb compares the hand decoder with prompb on
// arbitrary bodies.
func FuzzBatchMatchesPrompb(f *testing.F) {
	now := time.Now().UnixMilli()
	raw, err := (&prompb.WriteRequest{Timeseries: []prompb.TimeSeries{
		oneSample(series("a_total", "job", "a"), now, 1),
		{Labels: series("e"), Exemplars: []prompb.Exemplar{{Labels: series("x"), Timestamp: now}}},
	}}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add([]byte("\x0a\x02\x0a\x00"))
	f.Fuzz(func(t *testing.T, body []byte) {
		compareDecoders(t, "fuzz", body)
	})
}

// Senders posting the same series at once share the cache (and the pooled
// request buffers); every sample is stored under its own series.
func TestHandlerSeriesCacheConcurrent(t *testing.T) {
	h, _, db := cachedHandler(t, 0)
	now := time.Now().UnixMilli()
	const senders, requests, perRequest = 4, 20, 50
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for r := range requests {
				req := &prompb.WriteRequest{}
				for i := range perRequest {
					req.Timeseries = append(req.Timeseries, oneSample(series("conc_total", "sender", strconv.Itoa(s), "i", strconv.Itoa(i)), now+int64(r), float64(r)))
				}
				if w := post(h, encode(t, req), nil); w.Code != http.StatusNoContent {
					t.Errorf("status %d: %s", w.Code, w.Body)
					return
				}
			}
		})
	}
	wg.Wait()
	got := readSeries(t, db, "conc_total")
	if len(got) != senders*perRequest {
		t.Fatalf("%d series stored, want %d", len(got), senders*perRequest)
	}
	for name, pts := range got {
		if len(pts) != requests {
			t.Errorf("%s: %d samples, want %d", name, len(pts), requests)
		}
	}
}
