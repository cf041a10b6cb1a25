package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"
)

// readSilenceIDs lists the silences s serves: their ids, the status, and
// the Retry-After header of a refusal.
func readSilenceIDs(s *server) (ids []string, code int, retryAfter string, err error) {
	resp, err := silenceClient.Get(s.httpURL + "/api/v2/silences")
	if err != nil {
		return nil, 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return nil, resp.StatusCode, resp.Header.Get("Retry-After"), fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	var sils []listedSilence
	if err := json.Unmarshal(b, &sils); err != nil {
		return nil, resp.StatusCode, "", err
	}
	for _, x := range sils {
		ids = append(ids, x.ID)
	}
	return ids, resp.StatusCode, "", nil
}

// TestClusterReadsAreLinearizable: on three real vigil processes, on each
// backend, a silence acknowledged by any node is in the very next read on
// every other node, without waiting or polling in between; a follower cut
// off from the others (on etcd, from etcd) answers reads with 503 and
// Retry-After, never with its stale copy; healed, it serves them again.
func TestClusterReadsAreLinearizable(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testReadsAreLinearizable(t, backend) })
	}
}

func testReadsAreLinearizable(t *testing.T, backend string) {
	c := newFaultCluster(t, backend, "", faultAlertmanager("http://127.0.0.1:1/"))
	leader, term := c.settle(c.all(), 30*time.Second)
	t.Logf("leader %s, term %d", c.ids[leader], term)

	// checkVisible writes a silence through node via and reads it back at
	// once on every other node in among. A 503 is not stale, and the
	// server asks for a retry; it is retried, but the first 200 must
	// hold the write.
	refused := 0
	checkVisible := func(round, via int, among []int) {
		t.Helper()
		id, code, body := createSilenceVerbose(c.nodes[via], "Read", fmt.Sprintf("round %d", round))
		if code != http.StatusOK {
			t.Fatalf("round %d: write through %s: status %d: %s", round, c.ids[via], code, body)
		}
		for _, i := range among {
			if i == via {
				continue
			}
			for attempt := 1; ; attempt++ {
				ids, code, _, err := readSilenceIDs(c.nodes[i])
				if code == http.StatusServiceUnavailable && attempt < 5 {
					refused++
					t.Logf("round %d: %s refused a read (%v); retrying as asked", round, c.ids[i], err)
					time.Sleep(time.Second)
					continue
				}
				if err != nil {
					t.Fatalf("round %d: read on %s: %v", round, c.ids[i], err)
				}
				if !slices.Contains(ids, id) {
					t.Fatalf("round %d: the read on %s right after %s acknowledged silence %s does not have it: a stale read", round, c.ids[i], c.ids[via], id)
				}
				break
			}
		}
	}
	const rounds = 30
	for round := range rounds {
		checkVisible(round, round%3, c.all())
	}
	if refused > rounds/3 {
		t.Errorf("%d of %d reads refused on a healthy cluster", refused, 2*rounds)
	}

	// A follower cut off from the others.
	cut := c.except(leader)[0]
	c.net.isolate(c.ids[cut])
	var id string
	waitFor(t, "a silence written while "+c.ids[cut]+" is cut off", 20*time.Second, func() bool {
		id, _ = createSilence(c.nodes[leader], "Cut", "while partitioned")
		return id != ""
	})
	// On Raft it may still believe in the leader for a heartbeat timeout,
	// ask it for the read index and then wait in vain to apply up to it;
	// later it knows no leader. On etcd it cannot read the log's head.
	// Either way: 503, never the copy without id.
	deadline := time.Now().Add(4 * time.Second)
	reads := 0
	for time.Now().Before(deadline) {
		ids, code, retry, err := readSilenceIDs(c.nodes[cut])
		if reads == 0 {
			t.Logf("first read on the cut-off %s: %v", c.ids[cut], err)
		}
		reads++
		switch {
		case code == http.StatusOK && !slices.Contains(ids, id):
			t.Fatalf("cut-off %s served a read without silence %s, acknowledged before it: a stale read", c.ids[cut], id)
		case code == http.StatusOK:
			// Not stale; it cannot have it, though, being cut off
			// since before the write.
			t.Fatalf("cut-off %s served silence %s, written after the cut", c.ids[cut], id)
		case code != http.StatusServiceUnavailable || retry == "":
			t.Fatalf("cut-off %s: status %d, Retry-After %q (%v); want 503 with Retry-After", c.ids[cut], code, retry, err)
		}
	}
	t.Logf("%d reads on the cut-off %s, all 503", reads, c.ids[cut])

	c.net.heal(c.ids[cut])
	waitFor(t, c.ids[cut]+" serving reads again after the heal", 30*time.Second, func() bool {
		ids, _, _, err := readSilenceIDs(c.nodes[cut])
		return err == nil && slices.Contains(ids, id)
	})
	leader, term = c.settle(c.all(), 30*time.Second)
	t.Logf("healed: leader %s, term %d", c.ids[leader], term)
	for round := range 3 {
		checkVisible(rounds+round, cut, c.all())
	}
}
