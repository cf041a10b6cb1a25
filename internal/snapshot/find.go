package snapshot

import (
	"net"
	"net/url"
	"slices"
	"strconv"

	"github.com/prometheus/prometheus/model/labels"
	promscrape "github.com/prometheus/prometheus/scrape"

	"github.com/vigil-observability/vigil/internal/registry"
)

// DiagURLMeta is the registry metadata key whose value, when an instance
// sets it, is the full URL of its /debug/snapshot (for an instance whose
// diagnostics listen on another port or path than its registered one).
const DiagURLMeta = "vigil_diag_url"

// SnapshotPath is the SDK's diagnostics archive (sdk/diag).
const SnapshotPath = "/debug/snapshot"

// Instance is one instance of a service to ask for its snapshot.
type Instance struct {
	ID string `json:"id"`
	// Source is where it was found: "registry" or "scrape".
	Source string `json:"source"`
	// URL is its /debug/snapshot, without the seconds parameter.
	URL string `json:"url"`
}

// Registry is what the finder reads of the service registry
// (*registry.Registry). Safe for concurrent use.
type Registry interface {
	Entries(service string) ([]registry.Entry, uint64)
}

// Targets is what the finder reads of the scrape manager
// (*scrape.Manager). Safe for concurrent use.
type Targets interface {
	TargetsActive() map[string][]*promscrape.Target
}

// serviceLabels are the target labels that may name a target's service,
// in the order they are looked at.
var serviceLabels = []string{"service", "service_name", "job"}

// findInstances lists the live instances of service: from the registry
// when it holds any (critical ones left out), else the active scrape
// targets one of whose serviceLabels equals service. Sorted by ID.
func findInstances(reg Registry, targets Targets, service string) []Instance {
	var out []Instance
	if reg != nil {
		entries, _ := reg.Entries(service)
		for _, e := range entries {
			if e.Service != service || e.Health == registry.Critical {
				continue
			}
			u := e.Meta[DiagURLMeta]
			if u == "" {
				u = (&url.URL{Scheme: "http", Host: net.JoinHostPort(e.Address, strconv.Itoa(e.Port)), Path: SnapshotPath}).String()
			}
			out = append(out, Instance{ID: e.ID, Source: "registry", URL: u})
		}
	}
	if len(out) == 0 && targets != nil {
		seen := map[string]bool{}
		for _, pool := range targets.TargetsActive() {
			for _, t := range pool {
				ls := t.Labels(labels.NewBuilder(labels.EmptyLabels()))
				if !namesService(ls, service) {
					continue
				}
				tu := t.URL()
				u := url.URL{Scheme: tu.Scheme, Host: tu.Host, Path: SnapshotPath}
				id := ls.Get("instance")
				if id == "" {
					id = tu.Host
				}
				if seen[u.String()] {
					continue
				}
				seen[u.String()] = true
				out = append(out, Instance{ID: id, Source: "scrape", URL: u.String()})
			}
		}
	}
	slices.SortFunc(out, func(a, b Instance) int {
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return out
}

func namesService(ls labels.Labels, service string) bool {
	for _, name := range serviceLabels {
		if v := ls.Get(name); v != "" {
			return v == service
		}
	}
	return false
}
