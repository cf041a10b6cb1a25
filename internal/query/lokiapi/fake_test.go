package lokiapi

import (
	"context"
	"encoding/json"
	"iter"
	"slices"
	"strconv"
	"strings"

	"github.com/vigil-observability/vigil/internal/storage"
)

// fakeStore holds records in a slice and answers LogStreams and FindLogs
// as the storage contract says, keyed by the resource's JSON.
type fakeStore struct {
	recs      []storage.LogRecord
	lastQuery storage.LogQuery // of LogStreams
	lastFind  storage.LogQuery // of FindLogs
	noCursors bool             // as a store that gives no cursors
}

func newFakeStore(recs ...storage.LogRecord) *fakeStore { return &fakeStore{recs: recs} }

func resourceKey(r storage.LogRecord) string {
	b, _ := json.Marshal(r.ResourceAttributes)
	return r.Service + "\x00" + string(b)
}

func (f *fakeStore) matches(r storage.LogRecord, q storage.LogQuery) bool {
	if q.Service != "" && r.Service != q.Service {
		return false
	}
	if r.Timestamp.Before(q.Start) || !q.End.IsZero() && !r.Timestamp.Before(q.End) {
		return false
	}
	for _, t := range q.Terms {
		if !strings.Contains(strings.ToLower(r.Body), strings.ToLower(t)) {
			return false
		}
	}
	for _, c := range q.Contains {
		if !strings.Contains(r.Body, c) {
			return false
		}
	}
	return len(q.Streams) == 0 || slices.Contains(q.Streams, resourceKey(r))
}

func (f *fakeStore) LogStreams(_ context.Context, q storage.LogQuery) ([]storage.LogStream, error) {
	f.lastQuery = q
	by := map[string]*storage.LogStream{}
	for _, r := range f.recs {
		if !f.matches(r, q) {
			continue
		}
		k := resourceKey(r)
		if by[k] == nil {
			by[k] = &storage.LogStream{Key: k, Service: r.Service, Resource: r.ResourceAttributes}
		}
		by[k].Entries++
		by[k].Bytes += int64(len(r.Body))
	}
	var out []storage.LogStream
	for _, k := range sortedKeys(by) {
		out = append(out, *by[k])
	}
	return out, nil
}

func (f *fakeStore) FindLogs(_ context.Context, q storage.LogQuery) iter.Seq2[storage.LogRecord, error] {
	return func(yield func(storage.LogRecord, error) bool) {
		f.lastFind = q
		var out []storage.LogRecord
		for _, r := range f.recs {
			if f.matches(r, q) {
				out = append(out, r)
			}
		}
		slices.SortStableFunc(out, func(a, b storage.LogRecord) int { return a.Timestamp.Compare(b.Timestamp) })
		if !q.Forward {
			slices.Reverse(out)
		}
		// A record's cursor is its place in this order, the same for
		// every page of one query.
		for i := range out {
			if !f.noCursors {
				out[i].Cursor = strconv.Itoa(i)
			}
		}
		if q.After != "" {
			i, err := strconv.Atoi(q.After)
			if err != nil {
				yield(storage.LogRecord{}, err)
				return
			}
			out = out[i+1:]
		}
		for i, r := range out {
			if q.Limit > 0 && i >= q.Limit {
				return
			}
			if !yield(r, nil) {
				return
			}
		}
	}
}
