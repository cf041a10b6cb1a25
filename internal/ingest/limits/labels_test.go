package limits

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

func TestCheckLabels(t *testing.T) {
	small := Limits{MaxLabelsPerSeries: 3, MaxLabelNameLength: 8, MaxLabelValueLength: 10}
	manyLabels := func(n int) labels.Labels {
		b := labels.NewScratchBuilder(n)
		b.Add("__name__", "m")
		for i := range n - 1 {
			b.Add("l"+strconv.Itoa(i), "v")
		}
		b.Sort()
		return b.Labels()
	}
	// A duplicate name cannot be built with labels.FromStrings in every
	// labels implementation, but a ScratchBuilder passes it through.
	dup := func() labels.Labels {
		b := labels.NewScratchBuilder(3)
		b.Add("__name__", "m")
		b.Add("a", "1")
		b.Add("a", "2")
		b.Sort()
		return b.Labels()
	}()

	tests := []struct {
		name       string
		limits     Limits
		ls         labels.Labels
		wantReason string
	}{
		{name: "valid", limits: small, ls: labels.FromStrings("__name__", "up", "job", "node")},
		{name: "exactly at every limit", limits: small, ls: labels.FromStrings("__name__", "m", "12345678", "1234567890", "b", "")},
		{name: "too many labels", limits: small, ls: labels.FromStrings("__name__", "m", "a", "1", "b", "2", "c", "3"), wantReason: ReasonTooManyLabels},
		{name: "label name too long", limits: small, ls: labels.FromStrings("__name__", "m", "123456789", "v"), wantReason: ReasonLabelNameTooLong},
		{name: "metric name counts as a value", limits: small, ls: labels.FromStrings("__name__", "12345678901"), wantReason: ReasonLabelValueTooLong},
		{name: "label value too long", limits: small, ls: labels.FromStrings("__name__", "m", "a", "12345678901"), wantReason: ReasonLabelValueTooLong},
		{name: "no metric name", limits: small, ls: labels.FromStrings("job", "x"), wantReason: ReasonInvalidLabel},
		{name: "empty metric name", limits: small, ls: labels.FromStrings("__name__", "", "job", "x"), wantReason: ReasonInvalidLabel},
		{name: "empty label name", limits: small, ls: labels.FromStrings("__name__", "m", "", "x"), wantReason: ReasonInvalidLabel},
		{name: "duplicate label name", limits: small, ls: dup, wantReason: ReasonInvalidLabel},
		{name: "invalid utf8 value", limits: small, ls: labels.FromStrings("__name__", "m", "a", "\xff\xfe"), wantReason: ReasonInvalidLabel},
		{name: "invalid utf8 name", limits: small, ls: labels.FromStrings("__name__", "m", "a\xff", "v"), wantReason: ReasonInvalidLabel},
		{name: "invalid utf8 metric name", limits: small, ls: labels.FromStrings("__name__", "m\xc3"), wantReason: ReasonInvalidLabel},
		{name: "utf8 names are valid", limits: Limits{}, ls: labels.FromStrings("__name__", "http.server.duration", "service.name", "café")},
		{name: "defaults allow 64 labels", limits: Limits{}, ls: manyLabels(64)},
		{name: "defaults refuse 65 labels", limits: Limits{}, ls: manyLabels(65), wantReason: ReasonTooManyLabels},
		{name: "default value length", limits: Limits{}, ls: labels.FromStrings("__name__", "m", "a", strings.Repeat("x", 16<<10+1)), wantReason: ReasonLabelValueTooLong},
		{name: "default name length", limits: Limits{}, ls: labels.FromStrings("__name__", "m", strings.Repeat("x", 1025), "v"), wantReason: ReasonLabelNameTooLong},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := tc.limits.CheckLabels(tc.ls)
			if ok != (tc.wantReason == "") || reason != tc.wantReason {
				t.Fatalf("CheckLabels(%s) = (%q, %v), want (%q, %v)", tc.ls, reason, ok, tc.wantReason, tc.wantReason == "")
			}
		})
	}
}

func TestCheckSampleTimestamp(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	l := Limits{MaxPastAge: time.Hour, MaxFutureSkew: time.Minute}
	tests := []struct {
		name       string
		t          time.Time
		wantReason string
	}{
		{name: "now", t: now},
		{name: "oldest allowed", t: now.Add(-time.Hour)},
		{name: "too old", t: now.Add(-time.Hour - time.Millisecond), wantReason: ReasonTimestampTooOld},
		{name: "epoch", t: time.Unix(0, 0), wantReason: ReasonTimestampTooOld},
		{name: "newest allowed", t: now.Add(time.Minute)},
		{name: "too far ahead", t: now.Add(time.Minute + time.Millisecond), wantReason: ReasonTimestampInFuture},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reason, ok := l.CheckSampleTimestamp(tc.t.UnixMilli(), now)
			if ok != (tc.wantReason == "") || reason != tc.wantReason {
				t.Fatalf("CheckSampleTimestamp(%v) = (%q, %v), want %q", tc.t, reason, ok, tc.wantReason)
			}
		})
	}
	if _, ok := (Limits{}).CheckSampleTimestamp(now.Add(-6*24*time.Hour).UnixMilli(), now); !ok {
		t.Error("default limits refused a 6-day-old sample, want accepted (MaxPastAge 7d)")
	}
	// MaxFutureSkew defaults to an hour, but samples are capped at
	// MaxSampleFutureSkew.
	if _, ok := (Limits{}).CheckSampleTimestamp(now.Add(MaxSampleFutureSkew).UnixMilli(), now); !ok {
		t.Errorf("default limits refused a sample exactly MaxSampleFutureSkew ahead, want accepted")
	}
	if reason, _ := (Limits{}).CheckSampleTimestamp(now.Add(MaxSampleFutureSkew+time.Millisecond).UnixMilli(), now); reason != ReasonTimestampInFuture {
		t.Errorf("default limits on a sample just beyond MaxSampleFutureSkew gave %q, want %q", reason, ReasonTimestampInFuture)
	}
}

func TestSampleRejection(t *testing.T) {
	for _, tc := range []struct {
		err    error
		reason string
		ok     bool
	}{
		{fmt.Errorf("append: %w", storage.ErrOutOfOrderSample), ReasonOutOfOrder, true},
		{storage.ErrOutOfBounds, ReasonOutOfOrder, true},
		{storage.ErrTooOldSample, ReasonOutOfOrder, true},
		{storage.ErrDuplicateSampleForTimestamp, ReasonOutOfOrder, true},
		{histogram.ErrHistogramCountMismatch, ReasonUndecodable, true},
		{fmt.Errorf("%w: 10 series", ErrSeriesLimit), ReasonSeriesLimit, true},
		{errors.New("disk full"), "", false},
	} {
		reason, ok := SampleRejection(tc.err)
		if reason != tc.reason || ok != tc.ok {
			t.Errorf("SampleRejection(%v) = %q, %v; want %q, %v", tc.err, reason, ok, tc.reason, tc.ok)
		}
	}
}
