package kubernetes_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	promconfig "github.com/prometheus/prometheus/config"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/vigil-observability/vigil/internal/config"
	"github.com/vigil-observability/vigil/internal/web"
)

// podNamePlaceholder is what the render-config init container replaces
// with the pod's name in the ConfigMap's vigil.yaml.
const podNamePlaceholder = "__POD_NAME__"

// kinds maps each kind the manifests may hold to its apiVersion and its
// k8s.io/api type. A kind missing here fails the test rather than being
// decoded loosely.
var kinds = map[string]struct {
	apiVersion string
	new        func() any
}{
	"Namespace":           {"v1", func() any { return &corev1.Namespace{} }},
	"ServiceAccount":      {"v1", func() any { return &corev1.ServiceAccount{} }},
	"ConfigMap":           {"v1", func() any { return &corev1.ConfigMap{} }},
	"Service":             {"v1", func() any { return &corev1.Service{} }},
	"StatefulSet":         {"apps/v1", func() any { return &appsv1.StatefulSet{} }},
	"ClusterRole":         {"rbac.authorization.k8s.io/v1", func() any { return &rbacv1.ClusterRole{} }},
	"ClusterRoleBinding":  {"rbac.authorization.k8s.io/v1", func() any { return &rbacv1.ClusterRoleBinding{} }},
	"PodDisruptionBudget": {"policy/v1", func() any { return &policyv1.PodDisruptionBudget{} }},
}

// object is one decoded manifest document.
type object struct {
	file, kind, name string
	obj              any
}

// decodeStrict decodes one YAML document into the k8s.io/api type of its
// kind as the API server's strict field validation does: field names
// match case-sensitively (encoding/json would take clusterIp for
// clusterIP), and unknown or duplicate fields are errors. A misspelt or
// misplaced field would otherwise be dropped silently.
func decodeStrict(doc []byte) (object, error) {
	var meta struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name string `json:"name"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(doc, &meta); err != nil {
		return object{}, err
	}
	k, ok := kinds[meta.Kind]
	if !ok {
		return object{}, fmt.Errorf("kind %q: no k8s.io/api type known to this test", meta.Kind)
	}
	if meta.APIVersion != k.apiVersion {
		return object{}, fmt.Errorf("%s %s: apiVersion %q, want %q", meta.Kind, meta.Metadata.Name, meta.APIVersion, k.apiVersion)
	}
	if meta.Metadata.Name == "" {
		return object{}, fmt.Errorf("%s without metadata.name", meta.Kind)
	}
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	obj := k.new()
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err == nil {
		err = errors.Join(strict...)
	}
	if err != nil {
		return object{}, fmt.Errorf("%s %s: %w", meta.Kind, meta.Metadata.Name, err)
	}
	return object{kind: meta.Kind, name: meta.Metadata.Name, obj: obj}, nil
}

// documents splits a multi-document YAML stream, skipping documents that
// hold only comments.
func documents(r io.Reader) ([][]byte, error) {
	yr := k8syaml.NewYAMLReader(bufio.NewReader(r))
	var docs [][]byte
	for {
		doc, err := yr.Read()
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, err
		}
		j, err := yaml.YAMLToJSON(doc)
		if err != nil {
			return nil, err
		}
		if s := strings.TrimSpace(string(j)); s == "null" || s == "" {
			continue
		}
		docs = append(docs, doc)
	}
}

// manifestFiles are the files kubectl apply -k sends, every YAML file here
// but the kustomization itself.
func manifestFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = slices.DeleteFunc(files, func(f string) bool { return f == "kustomization.yaml" })
	if len(files) == 0 {
		t.Fatal("no manifests found")
	}
	return files
}

// loadManifests decodes every document of every manifest file strictly.
func loadManifests(t *testing.T) []object {
	t.Helper()
	var out []object
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		docs, err := documents(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if len(docs) == 0 {
			t.Errorf("%s holds no object", f)
		}
		for i, doc := range docs {
			o, err := decodeStrict(doc)
			if err != nil {
				t.Errorf("%s, document %d: %v", f, i+1, err)
				continue
			}
			o.file = f
			out = append(out, o)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	return out
}

// find returns the one object of the kind and name, failing the test if
// there is none.
func find[T any](t *testing.T, objs []object, kind, name string) T {
	t.Helper()
	for _, o := range objs {
		if o.kind == kind && o.name == name {
			return o.obj.(T)
		}
	}
	t.Fatalf("no %s %s in the manifests", kind, name)
	panic("unreachable")
}

// deployment is the manifests' objects that the checks relate to each other.
type deployment struct {
	sts            *appsv1.StatefulSet
	vigil          *corev1.Container
	headless       *corev1.Service
	client         *corev1.Service
	configMap      *corev1.ConfigMap
	serviceAccount *corev1.ServiceAccount
	role           *rbacv1.ClusterRole
	binding        *rbacv1.ClusterRoleBinding
	pdb            *policyv1.PodDisruptionBudget
}

func loadDeployment(t *testing.T) deployment {
	t.Helper()
	objs := loadManifests(t)
	d := deployment{
		sts:            find[*appsv1.StatefulSet](t, objs, "StatefulSet", "vigil"),
		headless:       find[*corev1.Service](t, objs, "Service", "vigil-headless"),
		client:         find[*corev1.Service](t, objs, "Service", "vigil"),
		configMap:      find[*corev1.ConfigMap](t, objs, "ConfigMap", "vigil-config"),
		serviceAccount: find[*corev1.ServiceAccount](t, objs, "ServiceAccount", "vigil"),
		role:           find[*rbacv1.ClusterRole](t, objs, "ClusterRole", "vigil-discovery"),
		binding:        find[*rbacv1.ClusterRoleBinding](t, objs, "ClusterRoleBinding", "vigil-discovery"),
		pdb:            find[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "vigil"),
	}
	for i := range d.sts.Spec.Template.Spec.Containers {
		if c := &d.sts.Spec.Template.Spec.Containers[i]; c.Name == "vigil" {
			d.vigil = c
		}
	}
	if d.vigil == nil {
		t.Fatal("the StatefulSet has no container named vigil")
	}
	return d
}

// replicas is the StatefulSet's pod count; Kubernetes' default is 1.
func (d deployment) replicas() int {
	if d.sts.Spec.Replicas == nil {
		return 1
	}
	return int(*d.sts.Spec.Replicas)
}

func (d deployment) podName(i int) string { return fmt.Sprintf("%s-%d", d.sts.Name, i) }

// containerPort returns the vigil container's port of that name.
func (d deployment) containerPort(t *testing.T, name string) int {
	t.Helper()
	for _, p := range d.vigil.Ports {
		if p.Name == name {
			return int(p.ContainerPort)
		}
	}
	t.Fatalf("the vigil container has no port named %q", name)
	return 0
}

// mountPath is where the container mounts the named volume.
func mountPath(t *testing.T, c *corev1.Container, volume string) string {
	t.Helper()
	for _, m := range c.VolumeMounts {
		if m.Name == volume {
			return m.MountPath
		}
	}
	t.Fatalf("container %s does not mount volume %s", c.Name, volume)
	return ""
}

// configFor is the ConfigMap's vigil.yaml as pod renders it, loaded and
// validated as vigil server does.
func (d deployment) configFor(t *testing.T, pod string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(d.renderedConfig(t, pod)), "", nil)
	if err != nil {
		t.Fatalf("vigil.yaml for %s: %v", pod, err)
	}
	return cfg
}

// renderedConfig runs the render-config init container's own command, its
// paths moved into a temporary directory, the way the kubelet would for
// pod; where no shell is at hand it does the substitution the command is
// checked to do.
func (d deployment) renderedConfig(t *testing.T, pod string) string {
	t.Helper()
	tmpl, ok := d.configMap.Data["vigil.yaml"]
	if !ok {
		t.Fatal("the ConfigMap has no vigil.yaml")
	}
	var init *corev1.Container
	for i := range d.sts.Spec.Template.Spec.InitContainers {
		if c := &d.sts.Spec.Template.Spec.InitContainers[i]; c.Name == "render-config" {
			init = c
		}
	}
	if init == nil {
		t.Fatal("no render-config init container")
	}
	if len(init.Command) != 3 || init.Command[0] != "sh" || init.Command[1] != "-c" {
		t.Fatalf("render-config command %q: want sh -c SCRIPT", init.Command)
	}
	script := init.Command[2]
	if !strings.Contains(script, "s/"+podNamePlaceholder+"/${POD_NAME}/g") {
		t.Fatalf("render-config script %q does not replace %s with $POD_NAME", script, podNamePlaceholder)
	}
	hasPodName := slices.ContainsFunc(init.Env, func(e corev1.EnvVar) bool {
		return e.Name == "POD_NAME" && e.ValueFrom != nil && e.ValueFrom.FieldRef != nil && e.ValueFrom.FieldRef.FieldPath == "metadata.name"
	})
	if !hasPodName {
		t.Fatal("render-config has no POD_NAME from metadata.name")
	}
	// The template is the ConfigMap's volume; the output is the volume the
	// server reads --config from, at the same path in both containers.
	tmplDir := mountPath(t, init, configMapVolume(t, d))
	outDir := mountPath(t, init, "config")
	if got := mountPath(t, d.vigil, "config"); got != outDir {
		t.Fatalf("render-config writes to %s, the server mounts that volume at %s", outDir, got)
	}
	out := path.Join(outDir, "vigil.yaml")
	if !slices.Contains(d.vigil.Args, "--config="+out) {
		t.Fatalf("vigil args %q do not read %s", d.vigil.Args, out)
	}

	sh, err := exec.LookPath("sh")
	if err != nil {
		return strings.ReplaceAll(tmpl, podNamePlaceholder, pod)
	}
	dir := t.TempDir()
	localTmpl, localOut := filepath.Join(dir, "template"), filepath.Join(dir, "out")
	for _, p := range []string{localTmpl, localOut} {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(localTmpl, "vigil.yaml"), []byte(tmpl), 0o600); err != nil {
		t.Fatal(err)
	}
	local := strings.NewReplacer(tmplDir+"/", localTmpl+"/", outDir+"/", localOut+"/").Replace(script)
	cmd := exec.Command(sh, "-c", local)
	cmd.Env = []string{"POD_NAME=" + pod, "PATH=" + os.Getenv("PATH")}
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("render-config script: %v\n%s", err, msg)
	}
	rendered, err := os.ReadFile(filepath.Join(localOut, "vigil.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return string(rendered)
}

// configMapVolume is the pod volume that holds the ConfigMap.
func configMapVolume(t *testing.T, d deployment) string {
	t.Helper()
	for _, v := range d.sts.Spec.Template.Spec.Volumes {
		if v.ConfigMap != nil && v.ConfigMap.Name == d.configMap.Name {
			return v.Name
		}
	}
	t.Fatalf("no volume holds ConfigMap %s", d.configMap.Name)
	return ""
}

func TestDecodeStrictRefusesWhatKubectlWouldDrop(t *testing.T) {
	for _, tc := range []struct {
		name, doc, want string
	}{
		{"unknown field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIp: None}\n", "unknown field"},
		{"misplaced field", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nreplicas: 3\n", "unknown field"},
		{"duplicate field", "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\nmetadata: {name: b}\n", "already set"},
		{"field in the wrong case", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ClusterIP: None}\n", "unknown field"},
		{"wrong type", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {ports: [{port: http}]}\n", "cannot unmarshal"},
		{"unknown kind", "apiVersion: v1\nkind: Sevrice\nmetadata: {name: s}\n", "no k8s.io/api type"},
		{"wrong apiVersion", "apiVersion: apps/v1beta1\nkind: StatefulSet\nmetadata: {name: s}\n", "want \"apps/v1\""},
		{"valid", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {clusterIP: None}\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeStrict([]byte(tc.doc))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused a valid document: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := loadManifests(t)
	seen := map[string]string{}
	for _, o := range objs {
		key := o.kind + "/" + o.name
		if f, dup := seen[key]; dup {
			t.Errorf("%s is in both %s and %s", key, f, o.file)
		}
		seen[key] = o.file
	}
	for kind := range kinds {
		if !slices.ContainsFunc(objs, func(o object) bool { return o.kind == kind }) {
			t.Errorf("no %s in the manifests", kind)
		}
	}
	// The manifests name their namespace themselves rather than rely on
	// kubectl's current one: the ClusterRoleBinding's subject has to.
	var ns string
	for _, o := range objs {
		if o.kind == "Namespace" {
			ns = o.name
		}
	}
	for _, o := range objs {
		switch o.kind {
		case "Namespace", "ClusterRole", "ClusterRoleBinding":
			continue
		}
		if got := o.obj.(metav1.Object).GetNamespace(); got != ns {
			t.Errorf("%s %s is in namespace %q, want %q", o.kind, o.name, got, ns)
		}
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	data, err := os.ReadFile("kustomization.yaml")
	if err != nil {
		t.Fatal(err)
	}
	// Kustomize's types are not a dependency; these are the fields used.
	type image struct {
		Name    string `json:"name"`
		NewName string `json:"newName"`
		NewTag  string `json:"newTag"`
	}
	var k struct {
		APIVersion string   `json:"apiVersion"`
		Kind       string   `json:"kind"`
		Resources  []string `json:"resources"`
		Images     []image  `json:"images"`
	}
	if err := yaml.UnmarshalStrict(data, &k); err != nil {
		t.Fatal(err)
	}
	if k.APIVersion != "kustomize.config.k8s.io/v1beta1" || k.Kind != "Kustomization" {
		t.Errorf("kustomization is %s %s", k.APIVersion, k.Kind)
	}
	got, want := slices.Sorted(slices.Values(k.Resources)), manifestFiles(t)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %q, want every manifest %q", got, want)
	}
	d := loadDeployment(t)
	if !slices.ContainsFunc(k.Images, func(i image) bool { return i.Name == d.vigil.Image && i.NewName != "" }) {
		t.Errorf("kustomization images do not set the vigil container's image %q", d.vigil.Image)
	}
}

func TestProbesAnswerOnVigilsRoutes(t *testing.T) {
	d := loadDeployment(t)
	httpPort := d.containerPort(t, "http")
	// Servers as vigil starts them: listening with the stores still
	// replaying their WALs, and with the stores open.
	replaying, open := web.New(web.Options{}), web.New(web.Options{})
	open.SetReady()
	get := func(srv *web.Server, p string) int {
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, p, nil))
		return rec.Code
	}
	for _, tc := range []struct {
		name  string
		probe *corev1.Probe
		path  string
		// The status while the stores replay, and once they are open.
		replaying, open int
	}{
		// Startup must wait for the replay, or liveness would start
		// counting (and readiness admit traffic) before storage is open.
		{"startup", d.vigil.StartupProbe, "/-/ready", http.StatusServiceUnavailable, http.StatusOK},
		{"readiness", d.vigil.ReadinessProbe, "/-/ready", http.StatusServiceUnavailable, http.StatusOK},
		// Liveness must hold during the replay and while not ready, or the
		// kubelet would restart a node that is only busy.
		{"liveness", d.vigil.LivenessProbe, "/-/healthy", http.StatusOK, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.probe
			if p == nil || p.HTTPGet == nil {
				t.Fatalf("no HTTP %s probe", tc.name)
			}
			if p.HTTPGet.Path != tc.path {
				t.Errorf("path %s, want %s", p.HTTPGet.Path, tc.path)
			}
			if port := p.HTTPGet.Port; port.StrVal != "http" && port.IntValue() != httpPort {
				t.Errorf("port %s is not the http listener's", port.String())
			}
			if !slices.Contains(open.Routes(), "GET "+p.HTTPGet.Path) {
				t.Errorf("vigil's routes %q lack GET %s", open.Routes(), p.HTTPGet.Path)
			}
			if got := get(replaying, p.HTTPGet.Path); got != tc.replaying {
				t.Errorf("GET %s during WAL replay: %d, want %d", p.HTTPGet.Path, got, tc.replaying)
			}
			if got := get(open, p.HTTPGet.Path); got != tc.open {
				t.Errorf("GET %s with storage open: %d, want %d", p.HTTPGet.Path, got, tc.open)
			}
		})
	}

	// A replay longer than the startup budget restarts the pod, which
	// starts the replay over: the budget must cover a large WAL.
	if sp := d.vigil.StartupProbe; sp != nil {
		if budget := time.Duration(sp.FailureThreshold) * time.Duration(sp.PeriodSeconds) * time.Second; budget < 10*time.Minute {
			t.Errorf("startup probe allows %s for WAL replay, want at least 10m", budget)
		}
	}
}

func TestConfigMapLoadsForEveryPod(t *testing.T) {
	d := loadDeployment(t)
	raftPort := d.containerPort(t, "raft")
	var wantPeers []config.ClusterPeer
	for i := range d.replicas() {
		wantPeers = append(wantPeers, config.ClusterPeer{
			ID:      d.podName(i),
			Address: net.JoinHostPort(d.podName(i)+"."+d.headless.Name, strconv.Itoa(raftPort)),
		})
	}
	for i := range d.replicas() {
		pod := d.podName(i)
		t.Run(pod, func(t *testing.T) {
			cfg := d.configFor(t, pod)
			cl := cfg.Cluster
			if cl == nil {
				t.Fatal("no cluster section")
			}
			if cl.Backend != config.ClusterRaft || cl.NodeID != pod {
				t.Errorf("cluster backend %q node_id %q, want raft and %s", cl.Backend, cl.NodeID, pod)
			}
			// The peers list names the StatefulSet's pods in the headless
			// Service, one for each replica, and this node as its peers
			// reach it.
			if !slices.Equal(cl.Peers, wantPeers) {
				t.Errorf("peers %v, want %v", cl.Peers, wantPeers)
			}
			if cl.AdvertiseAddr != wantPeers[i].Address {
				t.Errorf("advertise_addr %s, want %s", cl.AdvertiseAddr, wantPeers[i].Address)
			}
			if cfg.Prometheus == nil || !slices.ContainsFunc(cfg.Prometheus.ScrapeConfigs, func(sc *promconfig.ScrapeConfig) bool {
				return sc.JobName == scrapeJob
			}) {
				t.Errorf("no scrape job %s", scrapeJob)
			}
		})
	}

	// Without the init container's rendering the file is refused: the
	// placeholder is no member of the peers list.
	if _, err := config.Parse([]byte(d.configMap.Data["vigil.yaml"]), "", nil); err == nil || !strings.Contains(err.Error(), "not in cluster.peers") {
		t.Errorf("the unrendered vigil.yaml: got %v, want node_id not in peers", err)
	}
}

func TestListenersMatchPortsAndServices(t *testing.T) {
	d := loadDeployment(t)
	cfg := d.configFor(t, d.podName(0))
	for _, tc := range []struct{ port, addr string }{
		{"http", cfg.HTTPAddr},
		{"otlp-grpc", cfg.OTLPGRPCAddr},
		{"otlp-http", cfg.OTLPHTTPAddr},
		{"raft", cfg.Cluster.BindAddr},
	} {
		t.Run(tc.port, func(t *testing.T) {
			host, port, err := net.SplitHostPort(tc.addr)
			if err != nil {
				t.Fatal(err)
			}
			// Probes, Services and peers arrive on the pod's IP.
			if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
				t.Errorf("listener %s binds %s: the kubelet and Services cannot reach it", tc.addr, host)
			}
			if want := strconv.Itoa(d.containerPort(t, tc.port)); port != want {
				t.Errorf("listener %s, container port %s is %s", tc.addr, tc.port, want)
			}
		})
	}
	if len(d.vigil.Ports) != 4 {
		t.Errorf("container ports %v: want exactly the four listeners", d.vigil.Ports)
	}

	podLabels := labels.Set(d.sts.Spec.Template.Labels)
	for _, tc := range []struct {
		svc       *corev1.Service
		wantPorts []string
	}{
		{d.headless, []string{"http", "raft"}},
		{d.client, []string{"http", "otlp-grpc", "otlp-http"}},
	} {
		t.Run(tc.svc.Name, func(t *testing.T) {
			if len(tc.svc.Spec.Selector) == 0 || !labels.SelectorFromSet(tc.svc.Spec.Selector).Matches(podLabels) {
				t.Errorf("selector %v does not select the pods (%v)", tc.svc.Spec.Selector, podLabels)
			}
			var names []string
			for _, p := range tc.svc.Spec.Ports {
				names = append(names, p.Name)
				if p.TargetPort.StrVal != p.Name {
					t.Errorf("port %s targets %s, want the container port of its name", p.Name, p.TargetPort.String())
				}
				if want := d.containerPort(t, p.Name); int(p.Port) != want {
					t.Errorf("port %s is %d, the container's %d", p.Name, p.Port, want)
				}
			}
			slices.Sort(names)
			if !slices.Equal(names, tc.wantPorts) {
				t.Errorf("ports %v, want %v", names, tc.wantPorts)
			}
		})
	}
	if d.headless.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("headless Service has clusterIP %q", d.headless.Spec.ClusterIP)
	}
	// Peers resolve each other's names before any is ready.
	if !d.headless.Spec.PublishNotReadyAddresses {
		t.Error("headless Service does not publish pods that are not ready")
	}
	if d.sts.Spec.ServiceName != d.headless.Name {
		t.Errorf("StatefulSet serviceName %q, want %s", d.sts.Spec.ServiceName, d.headless.Name)
	}
	// OrderedReady would wait for vigil-0 to be ready, which needs a quorum.
	if d.sts.Spec.PodManagementPolicy != appsv1.ParallelPodManagement {
		t.Errorf("podManagementPolicy %q, want Parallel", d.sts.Spec.PodManagementPolicy)
	}
	if sel := d.pdb.Spec.Selector; sel == nil || !labels.SelectorFromSet(sel.MatchLabels).Matches(podLabels) {
		t.Errorf("PodDisruptionBudget selector %v does not select the pods", sel)
	}
	if mu := d.pdb.Spec.MaxUnavailable; mu == nil || mu.IntValue() != (d.replicas()-1)/2 {
		t.Errorf("PodDisruptionBudget maxUnavailable %v, want %d: more would cost the quorum", mu, (d.replicas()-1)/2)
	}
}

func TestStorageMemoryAndShutdownAgree(t *testing.T) {
	d := loadDeployment(t)
	cfg := d.configFor(t, d.podName(0))

	if n := len(d.sts.Spec.VolumeClaimTemplates); n != 1 {
		t.Fatalf("%d volumeClaimTemplates, want one for the data directory", n)
	}
	claim := d.sts.Spec.VolumeClaimTemplates[0]
	if got := mountPath(t, d.vigil, claim.Name); got != cfg.DataDir {
		t.Errorf("the claim %s is mounted at %s, data_dir is %s", claim.Name, got, cfg.DataDir)
	}

	limit, request := d.vigil.Resources.Limits.Memory(), d.vigil.Resources.Requests.Memory()
	if limit.IsZero() {
		t.Fatal("no memory limit")
	}
	// The pod is killed at its limit; vigil refuses ingest before its
	// own, which must leave room for what it does not count.
	ml := int64(cfg.Limits.MemoryLimit)
	if ml <= limit.Value()/2 || ml > limit.Value()*9/10 {
		t.Errorf("limits.memory_limit %s is not within 50-90%% of the container's %s", cfg.Limits.MemoryLimit, limit)
	}
	if request.Cmp(*limit) != 0 {
		t.Errorf("memory request %s differs from the limit %s", request, limit)
	}

	grace := d.sts.Spec.Template.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= time.Duration(cfg.ShutdownTimeout) {
		t.Errorf("terminationGracePeriodSeconds %v does not exceed shutdown_timeout %s", grace, cfg.ShutdownTimeout)
	}
}

func TestHostCheckAdmitsServiceNames(t *testing.T) {
	d := loadDeployment(t)
	cfg := d.configFor(t, d.podName(0))
	b, err := web.NewBrowsers(cfg.BrowserOptions(nil))
	if err != nil {
		t.Fatal(err)
	}
	h := b.Wrap(cfg.HTTPAddr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	port := strconv.Itoa(d.containerPort(t, "http"))
	ns := d.sts.Namespace
	type hostCase struct {
		host string
		ok   bool
	}
	cases := []hostCase{
		{d.client.Name, true},
		{d.client.Name + "." + ns + ".svc", true},
		{d.client.Name + "." + ns + ".svc.cluster.local", true},
		{d.podName(1) + "." + d.headless.Name + "." + ns + ".svc.cluster.local", true},
		{"10.244.1.7", true}, // a pod IP: probes and scrapes
		{"attacker.example.com", false},
	}
	// A node reaches another's API (silence writes forwarded to the
	// leader) at the host of its raft address, on the HTTP port.
	for _, p := range cfg.Cluster.Peers {
		host, _, err := net.SplitHostPort(p.Address)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, hostCase{host, true})
	}
	for _, tc := range cases {
		t.Run(tc.host, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/api/v1/query", nil)
			req.Host = net.JoinHostPort(tc.host, port)
			h.ServeHTTP(rec, req)
			if ok := rec.Code == http.StatusOK; ok != tc.ok {
				t.Errorf("Host %s: status %d, want allowed=%v", req.Host, rec.Code, tc.ok)
			}
		})
	}
}

func TestRBACBindsTheServiceAccountReadOnly(t *testing.T) {
	d := loadDeployment(t)
	if d.sts.Spec.Template.Spec.ServiceAccountName != d.serviceAccount.Name {
		t.Errorf("pods run as %q, not the ServiceAccount %s", d.sts.Spec.Template.Spec.ServiceAccountName, d.serviceAccount.Name)
	}
	ref := d.binding.RoleRef
	if ref.Kind != "ClusterRole" || ref.Name != d.role.Name {
		t.Errorf("binding refers to %s %s, want ClusterRole %s", ref.Kind, ref.Name, d.role.Name)
	}
	bound := slices.ContainsFunc(d.binding.Subjects, func(s rbacv1.Subject) bool {
		return s.Kind == rbacv1.ServiceAccountKind && s.Name == d.serviceAccount.Name && s.Namespace == d.serviceAccount.Namespace
	})
	if !bound {
		t.Errorf("binding subjects %v lack ServiceAccount %s/%s", d.binding.Subjects, d.serviceAccount.Namespace, d.serviceAccount.Name)
	}
	for _, r := range d.role.Rules {
		for _, v := range r.Verbs {
			if v != "get" && v != "list" && v != "watch" {
				t.Errorf("rule %v grants %s: discovery only reads", r, v)
			}
		}
	}
}
