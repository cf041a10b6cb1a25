package main

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"
)

// lokiStream is one stream of a Loki query_range answer.
type lokiStream struct {
	Stream map[string]string `json:"stream"`
	Values [][2]string       `json:"values"`
}

// lokiQuery runs a LogQL log query over the last hour through vigil's
// Loki query API, as Grafana's Loki data source sends it, and returns the
// streams of the answer.
func (s *server) lokiQuery(t *testing.T, query string) []lokiStream {
	t.Helper()
	now := time.Now()
	v := url.Values{
		"query": {query}, "direction": {"backward"}, "limit": {"5000"}, "step": {"1000ms"},
		"start": {strconv.FormatInt(now.Add(-time.Hour).UnixNano(), 10)},
		"end":   {strconv.FormatInt(now.Add(time.Minute).UnixNano(), 10)},
	}
	var resp struct {
		Status string `json:"status"`
		Data   struct {
			ResultType string       `json:"resultType"`
			Result     []lokiStream `json:"result"`
		} `json:"data"`
	}
	if code := s.getJSON(t, "/loki/api/v1/query_range?"+v.Encode(), &resp); code != http.StatusOK || resp.Data.ResultType != "streams" {
		t.Fatalf("Loki query %s: HTTP %d, %+v", query, code, resp)
	}
	return resp.Data.Result
}

// lokiLines returns the lines of a log query's answer, by line.
func (s *server) lokiLines(t *testing.T, query string) map[string]map[string]string {
	t.Helper()
	lines := map[string]map[string]string{}
	for _, st := range s.lokiQuery(t, query) {
		for _, v := range st.Values {
			lines[v[1]] = st.Stream
		}
	}
	return lines
}
