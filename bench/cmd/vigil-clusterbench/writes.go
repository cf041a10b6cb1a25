package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// writeSilences posts n silences to baseURL's /api/v2/silences from conc
// writers and returns each successful write's latency, from sending the
// request to the answer with the new silence's id (a write the cluster
// answers only after it is committed to the Raft log), and the failed
// writes. A write can fail when leadership changes under it (a loaded
// machine can delay heartbeats past the timeout); a client would retry,
// the harness counts it. It gives up when more than a tenth fail.
func writeSilences(baseURL string, n, conc int) ([]time.Duration, []error, error) {
	var (
		next   atomic.Int64
		mu     sync.Mutex
		lat    = make([]time.Duration, 0, n)
		failed []error
		wg     sync.WaitGroup
	)
	for w := range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > int64(n) {
					return
				}
				d, err := writeSilence(baseURL, fmt.Sprintf("w%d-%d", w, i))
				mu.Lock()
				if err != nil {
					failed = append(failed, err)
				} else {
					lat = append(lat, d)
				}
				tooMany := len(failed) > n/10
				mu.Unlock()
				if tooMany {
					return
				}
			}
		}()
	}
	wg.Wait()
	if len(failed) > n/10 {
		return lat, failed, fmt.Errorf("%d of %d writes failed, the first: %w", len(failed), n, failed[0])
	}
	return lat, failed, nil
}

func writeSilence(baseURL, tag string) (time.Duration, error) {
	now := time.Now()
	body := fmt.Sprintf(`{"matchers":[{"name":"bench","value":%q,"isRegex":false,"isEqual":true}],`+
		`"startsAt":%q,"endsAt":%q,"createdBy":"vigil-clusterbench","comment":"write latency"}`,
		tag, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	t0 := time.Now()
	resp, err := client.Post(baseURL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var r struct {
		SilenceID string `json:"silenceID"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return 0, fmt.Errorf("POST /api/v2/silences: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.SilenceID == "" {
		return 0, fmt.Errorf("POST /api/v2/silences: no silence id in the answer (%v)", err)
	}
	return time.Since(t0), nil
}

// quantile is the q-quantile of ds by the nearest-rank method.
func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[max(0, min(i, len(s)-1))]
}
