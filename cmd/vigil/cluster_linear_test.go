package main

import (
	"fmt"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/vigil-observability/vigil/internal/config"
)

// The silence set as a sequential object, for porcupine. Its state is the
// sorted ids of the active silences, joined by commas.
type silInput struct {
	op string // "create", "expire" or "read"
	id string // expire's
}

type silOutput struct {
	id      string   // create's
	ok      bool     // the write was acknowledged (200)
	unknown bool     // no answer, or one that does not say whether it happened
	active  []string // read's, sorted
}

var silenceModel = porcupine.Model{
	Partition: partitionBySilence,
	Init:      func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		set := splitIDs(state.(string))
		in, out := input.(silInput), output.(silOutput)
		switch in.op {
		case "create":
			if out.unknown || !out.ok {
				// Its id, if it happened, is unknown: reads leave it out.
				return true, state
			}
			if slices.Contains(set, out.id) {
				return false, state
			}
			return true, joinIDs(append(set, out.id))
		case "expire":
			i := slices.Index(set, in.id)
			switch {
			case out.unknown:
				// It may have happened: its return is unbounded, so the
				// checker may place it after every read that still saw
				// the silence.
				if i >= 0 {
					return true, joinIDs(slices.Delete(set, i, i+1))
				}
				return true, state
			case out.ok:
				if i < 0 {
					return false, state
				}
				return true, joinIDs(slices.Delete(set, i, i+1))
			default:
				return true, state
			}
		case "read":
			return joinIDs(out.active) == state.(string), state
		}
		return false, state
	},
	DescribeOperation: func(input, output interface{}) string {
		in, out := input.(silInput), output.(silOutput)
		switch in.op {
		case "create":
			return fmt.Sprintf("create -> %s ok=%v unknown=%v", out.id, out.ok, out.unknown)
		case "expire":
			return fmt.Sprintf("expire %s -> ok=%v unknown=%v", in.id, out.ok, out.unknown)
		}
		return fmt.Sprintf("read -> %v", out.active)
	},
}

// partitionBySilence checks each silence on its own: its create, its
// expiries, and every read reduced to whether it shows that silence
// active. Linearizability is local, so this is exact for the creates and
// expiries; a read is checked per silence, not as one snapshot of the set
// (a read showing one silence's change but not another's, both complete
// before it began, would pass). Checking whole-set reads is exponential in
// the writes of unknown outcome, which a run with faults has by the score.
func partitionBySilence(history []porcupine.Operation) [][]porcupine.Operation {
	var ids []string
	for _, op := range history {
		if in, out := op.Input.(silInput), op.Output.(silOutput); in.op == "create" && out.ok {
			ids = append(ids, out.id)
		}
	}
	var parts [][]porcupine.Operation
	for _, id := range ids {
		var part []porcupine.Operation
		for _, op := range history {
			in, out := op.Input.(silInput), op.Output.(silOutput)
			switch {
			case in.op == "create" && out.ok && out.id == id,
				in.op == "expire" && in.id == id:
				part = append(part, op)
			case in.op == "read":
				var active []string
				if slices.Contains(out.active, id) {
					active = []string{id}
				}
				op.Output = silOutput{active: active}
				part = append(part, op)
			}
		}
		parts = append(parts, part)
	}
	return parts
}

func splitIDs(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

func joinIDs(ids []string) string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return strings.Join(ids, ",")
}

// TestClusterLinearizableSilences runs clients that create, expire and
// read silences against three vigil nodes, on each backend (subtests raft
// and etcd), while a nemesis kills the leader (kill -9) and starts it
// again, and at full size also partitions a follower and kills a
// follower. On etcd it also partitions the leader from etcd for longer
// than its lease, and kills etcd's own leader member (at full size another
// member too) and restarts it. The history, with each operation's
// call and return times, is checked by porcupine against the silence set
// as a sequential object, one silence at a time (partitionBySilence).
//
// Writes and reads go to any live node: a follower forwards a write to
// the leader, and serves a read from its own copy once it has applied
// the log up to the leader's read index (docs/cluster.md), so every
// answered read, on the leader, a follower or a node cut off, is part of
// the checked history. A read refused (503: no leader to confirm it) has
// no effect and is left out. A write without an answer, or answered 5xx,
// may or may not have happened; the model allows both.
func TestClusterLinearizableSilences(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) { testLinearizableSilences(t, backend) })
	}
}

func testLinearizableSilences(t *testing.T, backend string) {
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	c := newFaultCluster(t, backend, "", fmt.Sprintf("route: {receiver: hook}\nreceivers:\n  - name: hook\n    webhook_configs: [{url: %q}]\n", hook.URL))

	clients, opsPerClient := 3, 25
	faults := []string{"kill-leader"}
	// How long a fault lasts. On etcd a partition shorter than the lease
	// (5 s) only stalls the leader; a longer one deposes it.
	hold := map[string]time.Duration{"kill": 3 * time.Second, "partition": 3 * time.Second}
	if backend == config.ClusterEtcd {
		faults = []string{"kill-leader", "partition-leader-heal", "kill-etcd-leader"}
		hold["partition"] = 7 * time.Second
	}
	if fullReliability() {
		clients, opsPerClient = 4, 120
		faults = []string{"kill-leader", "partition-follower", "kill-follower", "partition-leader-heal", "kill-leader"}
		if backend == config.ClusterEtcd {
			faults = append(faults, "kill-etcd-leader", "kill-etcd-member", "partition-leader-heal")
		}
	}
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("VIGIL_FUZZ_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (VIGIL_FUZZ_SEED replays the choices; the timing is the machine's)", seed)

	var (
		mu      sync.Mutex
		history []porcupine.Operation
		start   = time.Now()
		// nodes is the live set, read by clients under mu.
		live = []bool{true, true, true}
	)
	now := func() int64 { return int64(time.Since(start)) }
	record := func(client int, in silInput, out silOutput, call, ret int64) {
		mu.Lock()
		history = append(history, porcupine.Operation{ClientId: client, Input: in, Output: out, Call: call, Return: ret})
		mu.Unlock()
	}
	pickLive := func(r *rand.Rand) (int, *server) {
		mu.Lock()
		defer mu.Unlock()
		for {
			i := r.IntN(len(c.ids))
			if live[i] {
				return i, c.nodes[i]
			}
		}
	}
	const unbounded = math.MaxInt64 / 2

	var wg sync.WaitGroup
	var nemesisOver atomic.Bool
	// Should the test stop early, the clients stop before the nodes do.
	t.Cleanup(func() {
		nemesisOver.Store(true)
		wg.Wait()
	})
	stats := struct {
		sync.Mutex
		created, expired, reads, unknown, skippedReads int
		codes                                          map[int]int // of the writes with unknown outcome; 0: no answer
	}{codes: map[int]int{}}
	for cl := 0; cl < clients; cl++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(cl)))
			var mine []string // this client's active silences: only it expires them
			// At least opsPerClient operations, and on until the nemesis
			// has recovered from its last fault.
			for op := 0; !nemesisOver.Load() || (op < opsPerClient && !t.Failed()); op++ {
				time.Sleep(time.Duration(r.IntN(100)) * time.Millisecond)
				_, s := pickLive(r)
				switch x := r.Float64(); {
				case x < 0.35:
					call := now()
					id, code, msg := createSilenceVerbose(s, fmt.Sprintf("lin-%d-%d", cl, op), "linearizability")
					out := silOutput{id: id, ok: code == http.StatusOK && id != "", unknown: code == 0 || code >= 500}
					ret := now()
					if out.unknown {
						ret = unbounded
					}
					record(cl, silInput{op: "create"}, out, call, ret)
					stats.Lock()
					if out.ok {
						stats.created++
						mine = append(mine, id)
					} else if out.unknown {
						stats.unknown++
						stats.codes[code]++
						if stats.codes[code] <= 3 {
							t.Logf("write through %s at %s: %d %s", s.httpURL, time.Since(start).Round(time.Millisecond), code, strings.TrimSpace(msg))
						}
					}
					stats.Unlock()
				case x < 0.55 && len(mine) > 0:
					k := r.IntN(len(mine))
					id := mine[k]
					mine = slices.Delete(mine, k, k+1) // never expired twice
					call := now()
					code, msg := expireSilence(s, id)
					out := silOutput{ok: code == http.StatusOK, unknown: code == 0 || code >= 500}
					ret := now()
					if out.unknown {
						ret = unbounded
					}
					record(cl, silInput{op: "expire", id: id}, out, call, ret)
					stats.Lock()
					if out.ok {
						stats.expired++
					} else if out.unknown {
						stats.unknown++
						stats.codes[code]++
						if stats.codes[code] <= 3 {
							t.Logf("write through %s at %s: %d %s", s.httpURL, time.Since(start).Round(time.Millisecond), code, strings.TrimSpace(msg))
						}
					}
					stats.Unlock()
				default:
					call := now()
					sils, err := listSilences(s)
					ret := now()
					if err != nil {
						stats.Lock()
						stats.skippedReads++
						stats.Unlock()
						continue
					}
					var active []string
					for _, x := range sils {
						if x.Comment == "linearizability" && x.Status.State == "active" {
							active = append(active, x.ID)
						}
					}
					record(cl, silInput{op: "read"}, silOutput{active: active}, call, ret)
					stats.Lock()
					stats.reads++
					stats.Unlock()
				}
			}
		}()
	}

	// The nemesis, on the test's goroutine: faults spread over the run,
	// each followed by recovery.
	for _, f := range faults {
		time.Sleep(time.Second)
		leader, _ := c.settle(c.all(), 30*time.Second)
		victim := leader
		if strings.HasSuffix(f, "follower") {
			victim = c.except(leader)[0]
		}
		switch {
		case strings.HasPrefix(f, "kill-etcd"):
			// etcd's members, not vigil's nodes: the victim is a member.
			member := c.etcd.Leader()
			if f == "kill-etcd-member" || member < 0 {
				member = (max(member, 0) + 1) % len(c.etcd.Endpoints())
			}
			c.etcd.Kill(member)
			t.Logf("nemesis: kill -9 etcd member %d (%s) at %s", member, f, time.Since(start).Round(time.Millisecond))
			time.Sleep(hold["kill"])
			c.etcd.Restart(member)
			t.Logf("nemesis: etcd member %d recovered at %s", member, time.Since(start).Round(time.Millisecond))
			continue
		case strings.HasPrefix(f, "kill"):
			mu.Lock()
			live[victim] = false
			mu.Unlock()
			c.nodes[victim].kill9(t)
			t.Logf("nemesis: kill -9 %s (%s) at %s", c.ids[victim], f, time.Since(start).Round(time.Millisecond))
			time.Sleep(hold["kill"])
			c.launch(victim)
			c.waitReady(victim)
			mu.Lock()
			live[victim] = true
			mu.Unlock()
		case strings.HasPrefix(f, "partition"):
			c.net.isolate(c.ids[victim])
			t.Logf("nemesis: partition %s (%s) at %s", c.ids[victim], f, time.Since(start).Round(time.Millisecond))
			time.Sleep(hold["partition"])
			c.net.heal(c.ids[victim])
		}
		t.Logf("nemesis: %s recovered at %s", c.ids[victim], time.Since(start).Round(time.Millisecond))
	}
	time.Sleep(2 * time.Second) // operations on the recovered cluster
	nemesisOver.Store(true)
	wg.Wait()

	stats.Lock()
	t.Logf("%d operations in %s: %d creates and %d expiries acknowledged, %d writes with unknown outcome (by status, 0 for none: %v), %d reads checked (on any node), %d reads refused (503, no leader to confirm them)",
		len(history), time.Since(start).Round(time.Millisecond), stats.created, stats.expired, stats.unknown, stats.codes, stats.reads, stats.skippedReads)
	stats.Unlock()
	if stats.created == 0 || stats.reads == 0 {
		t.Fatal("no acknowledged create or no checked read: the history checks nothing")
	}

	// A create without an answer may have happened; its silence, whose id
	// no client learnt, is left out of the reads, as the model leaves out
	// the create.
	known := map[string]bool{}
	for _, op := range history {
		if out := op.Output.(silOutput); op.Input.(silInput).op == "create" && out.ok {
			known[out.id] = true
		}
	}
	// A create with unknown outcome is a no-op in the model: leave it out,
	// which spares the checker an operation open until the end.
	history = slices.DeleteFunc(history, func(op porcupine.Operation) bool {
		return op.Input.(silInput).op == "create" && op.Output.(silOutput).unknown
	})
	for i, op := range history {
		if op.Input.(silInput).op == "read" {
			out := op.Output.(silOutput)
			out.active = slices.DeleteFunc(out.active, func(id string) bool { return !known[id] })
			history[i].Output = out
		}
	}

	res, info := porcupine.CheckOperationsVerbose(silenceModel, history, time.Minute)
	switch res {
	case porcupine.Ok:
		t.Logf("the history of %d operations is linearizable", len(history))
	case porcupine.Unknown:
		t.Errorf("porcupine did not decide within a minute")
	default:
		t.Errorf("the history of %d operations is not linearizable", len(history))
		slices.SortFunc(history, func(a, b porcupine.Operation) int { return int(a.Call - b.Call) })
		for _, op := range history {
			t.Logf("client %d [%s, %s] %s", op.ClientId, time.Duration(op.Call), time.Duration(op.Return), silenceModel.DescribeOperation(op.Input, op.Output))
		}
		if f, err := os.CreateTemp("", "silences-history-*.html"); err == nil {
			if porcupine.Visualize(silenceModel, info, f) == nil {
				t.Logf("history visualised in %s", f.Name())
			}
			f.Close()
		}
	}
}

// TestSilenceModel pins that the model behind the linearizability check
// can reject: a stale read after an acknowledged expiry, a create that
// reads as absent after it returned, a silence expired twice.
func TestSilenceModel(t *testing.T) {
	create := func(id string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{Input: silInput{op: "create"}, Output: silOutput{id: id, ok: true}, Call: call, Return: ret}
	}
	expire := func(id string, out silOutput, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: 1, Input: silInput{op: "expire", id: id}, Output: out, Call: call, Return: ret}
	}
	read := func(call, ret int64, active ...string) porcupine.Operation {
		return porcupine.Operation{ClientId: 2, Input: silInput{op: "read"}, Output: silOutput{active: active}, Call: call, Return: ret}
	}
	const unbounded = math.MaxInt64 / 2
	for _, tc := range []struct {
		name    string
		history []porcupine.Operation
		want    porcupine.CheckResult
	}{
		{"create, read, expire, read", []porcupine.Operation{
			create("a", 0, 1), read(2, 3, "a"), expire("a", silOutput{ok: true}, 4, 5), read(6, 7)}, porcupine.Ok},
		{"a read concurrent with the expiry may see either", []porcupine.Operation{
			create("a", 0, 1), expire("a", silOutput{ok: true}, 2, 5), read(3, 4, "a"), read(3, 4)}, porcupine.Ok},
		{"stale read after an acknowledged expiry", []porcupine.Operation{
			create("a", 0, 1), expire("a", silOutput{ok: true}, 2, 3), read(4, 5, "a")}, porcupine.Illegal},
		{"a created silence missing after the create returned", []porcupine.Operation{
			create("a", 0, 1), read(2, 3)}, porcupine.Illegal},
		{"expired twice", []porcupine.Operation{
			create("a", 0, 1), expire("a", silOutput{ok: true}, 2, 3), expire("a", silOutput{ok: true}, 4, 5)}, porcupine.Illegal},
		{"an expiry of unknown outcome that happened", []porcupine.Operation{
			create("a", 0, 1), expire("a", silOutput{unknown: true}, 2, unbounded), read(4, 5, "a"), read(6, 7)}, porcupine.Ok},
		{"an expiry of unknown outcome that did not", []porcupine.Operation{
			create("a", 0, 1), expire("a", silOutput{unknown: true}, 2, unbounded), read(4, 5, "a"), read(6, 7, "a")}, porcupine.Ok},
		{"flapping after an expiry of unknown outcome", []porcupine.Operation{
			create("a", 0, 1), expire("a", silOutput{unknown: true}, 2, unbounded), read(4, 5), read(6, 7, "a")}, porcupine.Illegal},
	} {
		if got := porcupine.CheckOperationsTimeout(silenceModel, tc.history, 10*time.Second); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}
