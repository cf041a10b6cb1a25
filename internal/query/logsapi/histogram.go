package logsapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Histogram bins: a step the client does not give is chosen so the range
// splits into about targetBins bins of a round size.
const (
	targetBins = 60
	maxBins    = 11000 // as Prometheus caps query_range points
)

var roundSteps = []time.Duration{
	time.Second, 2 * time.Second, 5 * time.Second, 10 * time.Second, 15 * time.Second, 30 * time.Second,
	time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute, 30 * time.Minute,
	time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour,
}

type histogramResponse struct {
	Data histogramData `json:"data"`
}

type histogramData struct {
	Step    float64  `json:"step"`
	Total   int64    `json:"total"`
	Buckets []bucket `json:"buckets"`
}

type bucket struct {
	Time   int64            `json:"time"`
	Counts map[string]int64 `json:"counts"`
}

// histogram answers /api/logs/histogram: the number of matching records
// per time bin and severity band, for the bar chart above a log search.
func (h *handler) histogram(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	q, err := parseQuery(v, h.now(), true)
	if err != nil {
		h.writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	span := q.End.Sub(q.Start)
	step := pickStep(span)
	if s := v.Get("step"); s != "" {
		sec, err := strconv.ParseFloat(s, 64)
		if err != nil || sec < 1 || sec > 86400*31 {
			h.writeError(w, http.StatusBadRequest, fmt.Sprintf("invalid step %q: seconds between 1 and 2678400", s))
			return
		}
		step = time.Duration(sec * float64(time.Second)).Truncate(time.Second)
	}
	if span/step > maxBins {
		h.writeError(w, http.StatusBadRequest, fmt.Sprintf("step %s splits the range into more than %d bins; use a larger step", step, maxBins))
		return
	}
	got, err := h.logs.LogHistogram(r.Context(), q, step)
	if err != nil {
		h.storageError(w, r.Context(), err)
		return
	}
	out := histogramData{Step: step.Seconds(), Buckets: []bucket{}}
	for _, b := range got {
		t := b.Start.Unix()
		if n := len(out.Buckets); n == 0 || out.Buckets[n-1].Time != t {
			out.Buckets = append(out.Buckets, bucket{Time: t, Counts: map[string]int64{}})
		}
		out.Buckets[len(out.Buckets)-1].Counts[b.Severity.String()] += b.Count
		out.Total += b.Count
	}
	h.writeJSON(w, http.StatusOK, histogramResponse{Data: out})
}

// pickStep returns the smallest round step that splits span into at most
// targetBins bins.
func pickStep(span time.Duration) time.Duration {
	for _, s := range roundSteps {
		if span/s <= targetBins {
			return s
		}
	}
	return roundSteps[len(roundSteps)-1] * (span/(roundSteps[len(roundSteps)-1]*targetBins) + 1)
}
