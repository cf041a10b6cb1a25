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
// writers and returns each write's latency, from sending the request to
// the answer with the new silence's id (a write the cluster answers only
// after it is committed to the Raft log), and how many writes needed more
// than one attempt. A write fails when leadership changes under it (on a
// loaded machine heartbeats can be late past the timeout), with a 503;
// the writer then tries again every retryEvery, as a client would, and
// the write's latency runs from its first attempt to its success.
func writeSilences(baseURL string, n, conc int) ([]time.Duration, int, []error, error) {
	var (
		next    atomic.Int64
		mu      sync.Mutex
		lat     = make([]time.Duration, 0, n)
		retried int
		errs    []error
		giveUp  error
		wg      sync.WaitGroup
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
				tag := fmt.Sprintf("w%d-%d", w, i)
				t0 := time.Now()
				var failed []error
				for {
					err := writeSilence(baseURL, tag)
					if err == nil {
						break
					}
					failed = append(failed, err)
					if time.Since(t0) > retryFor {
						mu.Lock()
						giveUp = fmt.Errorf("a write failed for %v, the last attempt: %w", retryFor, err)
						mu.Unlock()
						return
					}
					time.Sleep(retryEvery)
				}
				d := time.Since(t0)
				mu.Lock()
				lat = append(lat, d)
				if len(failed) > 0 {
					retried++
					errs = append(errs, failed...)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return lat, retried, errs, giveUp
}

const (
	retryEvery = 50 * time.Millisecond
	retryFor   = 30 * time.Second
)

func writeSilence(baseURL, tag string) error {
	now := time.Now()
	body := fmt.Sprintf(`{"matchers":[{"name":"bench","value":%q,"isRegex":false,"isEqual":true}],`+
		`"startsAt":%q,"endsAt":%q,"createdBy":"vigil-clusterbench","comment":"write latency"}`,
		tag, now.Format(time.RFC3339), now.Add(time.Hour).Format(time.RFC3339))
	resp, err := client.Post(baseURL+"/api/v2/silences", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var r struct {
		SilenceID string `json:"silenceID"`
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("POST /api/v2/silences: %s: %s", resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil || r.SilenceID == "" {
		return fmt.Errorf("POST /api/v2/silences: no silence id in the answer (%v)", err)
	}
	return nil
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
