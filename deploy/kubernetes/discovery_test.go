package kubernetes_test

import (
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vigil-observability/vigil/internal/ingest/scrape"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// scrapeJob is the ConfigMap's example kubernetes_sd_configs job.
const scrapeJob = "kubernetes-service-endpoints"

// resource is an API resource as a request path names it.
type resource struct{ group, name string }

func (r resource) String() string {
	if r.group == "" {
		return r.name
	}
	return r.name + "." + r.group
}

// apiResource is what the fake API server serves of one resource.
type apiResource struct {
	groupVersion, kind string
	items              []any
}

// fakeAPIServer answers the list and watch requests of client-go's
// informers from fixed objects, as the Kubernetes API server does, in
// JSON: a list, then a watch that stays open; or, where watchList is set,
// one watch that streams the objects and ends the initial state with a
// bookmark (the WatchList protocol client-go tries first). Every request
// is recorded, so that the RBAC rules can be checked against what
// discovery really asks for.
type fakeAPIServer struct {
	URL       string
	resources map[resource]apiResource
	watchList bool
	stop      chan struct{}

	mu       sync.Mutex
	verbs    map[resource]map[string]bool
	unserved []string
}

func newFakeAPIServer(t *testing.T, watchList bool, resources map[resource]apiResource) *fakeAPIServer {
	f := &fakeAPIServer{resources: resources, watchList: watchList, stop: make(chan struct{}), verbs: map[resource]map[string]bool{}}
	srv := httptest.NewServer(f)
	f.URL = srv.URL
	t.Cleanup(func() {
		// Open watches end first, or Close would wait for them.
		close(f.stop)
		srv.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(f.unserved) > 0 {
			t.Errorf("discovery asked for what the fake API server does not serve: %q", f.unserved)
		}
	})
	return f
}

// requested returns the verbs discovery used per resource.
func (f *fakeAPIServer) requested() map[resource][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[resource][]string{}
	for r, vs := range f.verbs {
		for v := range vs {
			out[r] = append(out[r], v)
		}
		slices.Sort(out[r])
	}
	return out
}

// parsePath splits /api/v1/[namespaces/NS/]RESOURCE and
// /apis/GROUP/VERSION/[namespaces/NS/]RESOURCE.
func parsePath(p string) (r resource, namespace string, ok bool) {
	parts := strings.Split(strings.Trim(p, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api" && parts[1] == "v1":
		parts = parts[2:]
	case len(parts) >= 4 && parts[0] == "apis":
		r.group = parts[1]
		parts = parts[3:]
	default:
		return r, "", false
	}
	if len(parts) == 3 && parts[0] == "namespaces" {
		namespace, parts = parts[1], parts[2:]
	}
	if len(parts) != 1 {
		return r, "", false
	}
	r.name = parts[0]
	return r, namespace, true
}

func (f *fakeAPIServer) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r, ns, ok := parsePath(req.URL.Path)
	res, known := f.resources[r]
	q := req.URL.Query()
	watch := q.Get("watch") == "true" || q.Get("watch") == "1"
	if !ok || !known || req.Method != http.MethodGet {
		f.mu.Lock()
		f.unserved = append(f.unserved, req.Method+" "+req.URL.String())
		f.mu.Unlock()
		writeStatus(w, http.StatusNotFound, "NotFound", "not served by the fake")
		return
	}
	verb := "list"
	if watch {
		verb = "watch"
	}
	f.mu.Lock()
	if f.verbs[r] == nil {
		f.verbs[r] = map[string]bool{}
	}
	f.verbs[r][verb] = true
	f.mu.Unlock()

	var items []any
	for _, it := range res.items {
		if ns == "" || it.(metav1.Object).GetNamespace() == ns {
			items = append(items, it)
		}
	}
	if !watch {
		writeJSON(w, map[string]any{
			"apiVersion": res.groupVersion, "kind": res.kind + "List",
			"metadata": map[string]any{"resourceVersion": "1"}, "items": items,
		})
		return
	}

	initial := q.Get("sendInitialEvents") == "true"
	if initial && !f.watchList {
		// What an API server without the WatchList feature answers; the
		// client falls back to list, then watch.
		writeStatus(w, http.StatusUnprocessableEntity, "Invalid", "sendInitialEvents is forbidden for watch unless the WatchList feature gate is enabled")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	enc := json.NewEncoder(w)
	if initial {
		for _, it := range items {
			_ = enc.Encode(map[string]any{"type": "ADDED", "object": it})
		}
		_ = enc.Encode(map[string]any{"type": "BOOKMARK", "object": map[string]any{
			"apiVersion": res.groupVersion, "kind": res.kind,
			"metadata": map[string]any{
				"resourceVersion": "1",
				"annotations":     map[string]string{metav1.InitialEventsAnnotationKey: "true"},
			},
		}})
	}
	w.(http.Flusher).Flush()
	select {
	case <-req.Context().Done():
	case <-f.stop:
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{
		TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"},
		Status:   metav1.StatusFailure, Message: msg, Reason: metav1.StatusReason(reason), Code: int32(code),
	})
}

// cluster is a namespace "demo" with two Services on one node: shop,
// annotated for scraping (on another port and path than its endpoint's),
// and quiet, not annotated.
func cluster(shopAddr, quietAddr string) map[resource]apiResource {
	shopHost, shopPort, _ := net.SplitHostPort(shopAddr)
	quietHost, quietPort, _ := net.SplitHostPort(quietAddr)
	qp, _ := strconv.Atoi(quietPort)
	meta := func(name string, lbls, annotations map[string]string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: "demo", ResourceVersion: "1", Labels: lbls, Annotations: annotations}
	}
	pod := func(name, ip string) any {
		return &corev1.Pod{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
			ObjectMeta: meta(name, map[string]string{"app": strings.TrimSuffix(name, "-0")}, nil),
			Spec:       corev1.PodSpec{NodeName: "node-a", Containers: []corev1.Container{{Name: "app"}}},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip},
		}
	}
	service := func(name string, annotations map[string]string) any {
		return &corev1.Service{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Service"},
			ObjectMeta: meta(name, map[string]string{"app": name}, annotations),
			Spec:       corev1.ServiceSpec{Selector: map[string]string{"app": name}},
		}
	}
	slice := func(name, svc, host, pod string, port int) any {
		node, ready := "node-a", true
		p := int32(port)
		return &discoveryv1.EndpointSlice{
			TypeMeta:    metav1.TypeMeta{APIVersion: "discovery.k8s.io/v1", Kind: "EndpointSlice"},
			ObjectMeta:  meta(name, map[string]string{discoveryv1.LabelServiceName: svc}, nil),
			AddressType: discoveryv1.AddressTypeIPv4,
			Endpoints: []discoveryv1.Endpoint{{
				Addresses:  []string{host},
				Conditions: discoveryv1.EndpointConditions{Ready: &ready},
				TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: "demo", Name: pod},
				NodeName:   &node,
			}},
			Ports: []discoveryv1.EndpointPort{{Name: ptr("web"), Port: &p}},
		}
	}
	return map[resource]apiResource{
		{"", "nodes"}: {"v1", "Node", []any{&corev1.Node{
			TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Node"},
			ObjectMeta: metav1.ObjectMeta{Name: "node-a", ResourceVersion: "1", Labels: map[string]string{
				"topology.kubernetes.io/zone": "zone-a",
			}},
		}}},
		{"", "pods"}: {"v1", "Pod", []any{pod("shop-0", shopHost), pod("quiet-0", quietHost)}},
		{"", "services"}: {"v1", "Service", []any{
			service("shop", map[string]string{
				"prometheus.io/scrape": "true", "prometheus.io/port": shopPort, "prometheus.io/path": "/shop/metrics",
			}),
			service("quiet", nil),
		}},
		// shop's endpoint names port 9, which serves nothing: only the
		// prometheus.io/port annotation leads to the target.
		{"discovery.k8s.io", "endpointslices"}: {"discovery.k8s.io/v1", "EndpointSlice", []any{
			slice("shop-x1", "shop", shopHost, "shop-0", 9),
			slice("quiet-x1", "quiet", quietHost, "quiet-0", qp),
		}},
	}
}

func ptr[T any](v T) *T { return &v }

// metricsTarget serves one counter on path and counts every request.
func metricsTarget(t *testing.T, path string) (*httptest.Server, *atomic.Int64) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path != path {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, "# TYPE shop_orders_total counter\nshop_orders_total 7\n")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestKubernetesSDScrapesWhatItDiscovers runs the ConfigMap's scrape job,
// with Prometheus's own kubernetes_sd code, against a fake API server, and
// vigil's scrape manager on what it finds: the annotated Service's
// endpoint is scraped with its relabelled address, path and labels, the
// other is dropped, and the RBAC rules grant exactly what discovery asked
// for.
func TestKubernetesSDScrapesWhatItDiscovers(t *testing.T) {
	d := loadDeployment(t)
	for _, tc := range []struct {
		name      string
		watchList bool
	}{
		{"watch-list", true},
		{"list then watch", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			shop, _ := metricsTarget(t, "/shop/metrics")
			quiet, quietHits := metricsTarget(t, "/metrics")
			shopAddr := strings.TrimPrefix(shop.URL, "http://")
			api := newFakeAPIServer(t, tc.watchList, cluster(shopAddr, strings.TrimPrefix(quiet.URL, "http://")))

			cfg := d.configFor(t, d.podName(0)).Prometheus
			var job *promconfig.ScrapeConfig
			for _, sc := range cfg.ScrapeConfigs {
				if sc.JobName == scrapeJob {
					job = sc
				}
			}
			if job == nil || len(job.ServiceDiscoveryConfigs) != 1 {
				t.Fatalf("want job %s with one discovery config", scrapeJob)
			}
			sd, ok := job.ServiceDiscoveryConfigs[0].(*kubernetes.SDConfig)
			if !ok {
				t.Fatalf("job %s discovers with %T, want kubernetes_sd_configs", scrapeJob, job.ServiceDiscoveryConfigs[0])
			}
			// In the pod the API server comes from the service account;
			// here it is the fake. Everything else is the manifest's.
			u, err := url.Parse(api.URL)
			if err != nil {
				t.Fatal(err)
			}
			sd.APIServer.URL = u
			job.ScrapeInterval = model.Duration(200 * time.Millisecond)
			job.ScrapeTimeout = model.Duration(200 * time.Millisecond)

			db := storagetest.OpenTSDB(t, storagetest.TSDBOptions{})
			m, err := scrape.New(scrape.Options{Appendable: db, DiscoveryUpdateInterval: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.ApplyConfig(cfg); err != nil {
				t.Fatal(err)
			}
			runErr := make(chan error, 1)
			go func() { runErr <- m.Run() }()
			stopped := false
			stop := func() {
				if !stopped {
					stopped = true
					m.Stop()
					if err := <-runErr; err != nil {
						t.Errorf("Run: %v", err)
					}
				}
			}
			t.Cleanup(stop)

			want := labels.FromStrings(
				"__name__", "shop_orders_total", "app", "shop", "instance", shopAddr, "job", scrapeJob,
				"namespace", "demo", "node", "node-a", "pod", "shop-0", "service", "shop", "zone", "zone-a",
			)
			deadline := time.Now().Add(30 * time.Second)
			var got map[string]float64
			for {
				got = samples(t, db, labels.MustNewMatcher(labels.MatchEqual, "__name__", "shop_orders_total"))
				if v, ok := got[want.String()]; ok && v == 7 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no sample %s = 7 within 30s; stored: %v; API requests: %v", want, got, api.requested())
				}
				time.Sleep(50 * time.Millisecond)
			}
			if len(got) != 1 {
				t.Errorf("stored %v, want only %s", got, want)
			}
			if n := len(m.TargetsActive()[scrapeJob]); n != 1 {
				t.Errorf("%d active targets, want the annotated Service's one", n)
			}
			if n := m.TargetsDroppedCounts()[scrapeJob]; n != 1 {
				t.Errorf("%d dropped targets, want the unannotated Service's one", n)
			}
			stop()
			if n := quietHits.Load(); n != 0 {
				t.Errorf("the unannotated Service's endpoint was scraped %d times", n)
			}

			checkRBACCovers(t, d, api.requested())
		})
	}
}

// checkRBACCovers checks that the ClusterRole lets the service account
// list and watch every resource discovery asked for (an informer lists
// when the API server does not stream, so both verbs are needed either
// way), and grants nothing else.
func checkRBACCovers(t *testing.T, d deployment, requested map[resource][]string) {
	t.Helper()
	granted := map[resource][]string{}
	for _, rule := range d.role.Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %v: discovery needs whole resources, nothing else", rule)
		}
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				granted[resource{g, r}] = append(granted[resource{g, r}], rule.Verbs...)
			}
		}
	}
	for r := range requested {
		if !slices.Contains(granted[r], "list") || !slices.Contains(granted[r], "watch") {
			t.Errorf("discovery reads %s, the ClusterRole grants it %v, want list and watch", r, granted[r])
		}
	}
	for r := range granted {
		if _, ok := requested[r]; !ok {
			t.Errorf("the ClusterRole grants %s %v, which discovery never asked for", r, granted[r])
		}
	}
}

// samples returns the newest value of every series matching ms, keyed by
// its label set.
func samples(t *testing.T, db *tsdb.DB, ms ...*labels.Matcher) map[string]float64 {
	t.Helper()
	q, err := db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	out := map[string]float64{}
	ss := q.Select(t.Context(), false, nil, ms...)
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			_, out[ss.At().Labels().String()] = it.At()
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
