package profilescrape

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// TargetsPath is where Handler serves the targets, in the shape of
// Prometheus's /api/v1/targets.
const TargetsPath = "/api/v1/profiles/targets"

// Health of a target or one of its profiles, as Prometheus names it.
const (
	HealthUp      = "up"
	HealthDown    = "down"
	HealthUnknown = "unknown"
)

// Targets is what Handler reads; *Scraper is one.
type Targets interface {
	Targets() []TargetStatus
}

type targetsData struct {
	ActiveTargets []targetJSON `json:"activeTargets"`
}

type targetJSON struct {
	ScrapePool         string            `json:"scrapePool"`
	Service            string            `json:"service"`
	Labels             map[string]string `json:"labels"`
	ScrapeURL          string            `json:"scrapeUrl"`
	LastError          string            `json:"lastError"`
	LastScrape         time.Time         `json:"lastScrape"`
	LastScrapeDuration float64           `json:"lastScrapeDuration"`
	Health             string            `json:"health"`
	Profiles           []profileJSON     `json:"profiles"`
}

type profileJSON struct {
	Profile            string    `json:"profile"`
	ScrapeURL          string    `json:"scrapeUrl"`
	LastError          string    `json:"lastError"`
	LastScrape         time.Time `json:"lastScrape"`
	LastScrapeDuration float64   `json:"lastScrapeDuration"`
	Health             string    `json:"health"`
}

// Handler serves GET TargetsPath: every active target with its last
// scrape. A target is up when each of its profiles' last scrape
// succeeded, down when one failed (lastError names which), unknown
// before its first scrape; each profile's own state is in profiles.
func Handler(ts Targets) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data := targetsData{ActiveTargets: []targetJSON{}}
		for _, t := range ts.Targets() {
			data.ActiveTargets = append(data.ActiveTargets, targetToJSON(t))
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(struct {
			Status string      `json:"status"`
			Data   targetsData `json:"data"`
		}{"success", data})
	})
}

func targetToJSON(t TargetStatus) targetJSON {
	out := targetJSON{
		ScrapePool: t.Job, Service: t.Service, Labels: t.Labels, ScrapeURL: t.URL,
		Health: HealthUnknown, Profiles: []profileJSON{},
	}
	var errs []string
	scraped := 0
	for _, p := range t.Profiles {
		pj := profileJSON{Profile: p.Kind, ScrapeURL: p.URL, LastScrape: p.LastScrape, LastScrapeDuration: p.Duration.Seconds(), Health: HealthUnknown}
		if !p.LastScrape.IsZero() {
			scraped++
			pj.Health = HealthUp
			out.LastScrapeDuration += p.Duration.Seconds()
			if p.LastScrape.After(out.LastScrape) {
				out.LastScrape = p.LastScrape
			}
		}
		if p.Err != nil {
			pj.Health, pj.LastError = HealthDown, p.Err.Error()
			errs = append(errs, p.Kind+": "+pj.LastError)
		}
		out.Profiles = append(out.Profiles, pj)
	}
	switch {
	case len(errs) > 0:
		out.Health, out.LastError = HealthDown, strings.Join(errs, "; ")
	case scraped > 0:
		out.Health = HealthUp
	}
	return out
}
