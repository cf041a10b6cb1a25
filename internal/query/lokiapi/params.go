package lokiapi

import (
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// defaultSince is how far back a query reaches when it gives no start, as
// in Loki.
const defaultSince = time.Hour

// parseTime reads a time as Loki's API takes it: RFC 3339, a decimal with
// a fraction as Unix seconds, or an integer, which is Unix nanoseconds
// (what Grafana and logcli send), except that one of at most 10 digits is
// Unix seconds, as in Loki.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if strings.ContainsAny(s, ".eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/1e9 {
			return time.Time{}, fmt.Errorf("cannot parse %q as a time: want RFC 3339, Unix nanoseconds or Unix seconds with a fraction", s)
		}
		sec, frac := math.Modf(f)
		return time.Unix(int64(sec), int64(math.Round(frac*1e9))).UTC(), nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("cannot parse %q as a time: want RFC 3339, Unix nanoseconds or Unix seconds with a fraction", s)
	}
	if len(strings.TrimPrefix(s, "-")) <= 10 {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Unix(0, n).UTC(), nil
}

// parseDuration reads a duration as Loki takes step and since: a Go or
// Prometheus duration (1m, 1h30m, 2d), or a number of seconds.
func parseDuration(s string) (time.Duration, error) {
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > float64(math.MaxInt64)/1e9 {
			return 0, fmt.Errorf("cannot parse %q as a duration", s)
		}
		return time.Duration(f * float64(time.Second)), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return d, nil
	}
	d, err := model.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("cannot parse %q as a duration: %w", s, err)
	}
	return time.Duration(d), nil
}

// timeRange reads start, end and since: end defaults to now, start to
// since (an hour by default) before end.
func timeRange(v url.Values, now time.Time) (start, end time.Time, err error) {
	end = now
	if s := v.Get("end"); s != "" {
		if end, err = parseTime(s); err != nil {
			return start, end, fmt.Errorf("end: %w", err)
		}
	}
	since := defaultSince
	if s := v.Get("since"); s != "" {
		if since, err = parseDuration(s); err != nil {
			return start, end, fmt.Errorf("since: %w", err)
		}
	}
	start = end.Add(-since)
	if s := v.Get("start"); s != "" {
		if start, err = parseTime(s); err != nil {
			return start, end, fmt.Errorf("start: %w", err)
		}
	}
	if end.Before(start) {
		return start, end, fmt.Errorf("end (%s) is before start (%s)", end.Format(time.RFC3339Nano), start.Format(time.RFC3339Nano))
	}
	return start, end, nil
}

// intParam reads a non-negative integer parameter, def when absent.
func intParam(v url.Values, name string, def int) (int, error) {
	s := v.Get(name)
	if s == "" {
		return def, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%s: %q is not a non-negative integer", name, s)
	}
	return n, nil
}
