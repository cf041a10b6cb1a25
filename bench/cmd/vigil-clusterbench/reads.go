package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Silence reads: what a client sees of the read index a clustered node
// takes before each (on a follower, a request to the leader and the
// leader's heartbeat round; docs/cluster.md).
const (
	readOne  = "GET /api/v2/silence/{id}"
	readList = "GET /api/v2/silences"
)

type readRow struct {
	target, what string
	lat          []time.Duration
}

// readSilences reads baseURL's silences n times, one after the other, as
// what says: one silence by its id (the cost of the read index shows
// best, the answer being small) or the whole list. Reads are not retried.
func readSilences(baseURL, what string, n int) ([]time.Duration, error) {
	url := baseURL + "/api/v2/silences"
	if what == readOne {
		var sils []struct{ ID string }
		if err := getJSON(url, &sils); err != nil {
			return nil, err
		}
		if len(sils) == 0 {
			return nil, fmt.Errorf("no silence to read")
		}
		url = baseURL + "/api/v2/silence/" + sils[0].ID
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		resp, err := client.Get(url)
		if err != nil {
			return nil, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("%s: %s", what, resp.Status)
		}
		lat = append(lat, time.Since(t0))
	}
	return lat, nil
}

func getJSON(url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
