package alerting

import (
	"cmp"
	"fmt"
	"net/url"
	"slices"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"
)

// CheckTemplates loads an alertmanager.yml and renders every templated
// field of every receiver against a sample alert, as the template fallback
// renders them before each notification, so that broken templates show
// before an alert needs them. Templates that fail only on some alerts'
// data (an index out of range) cannot be found this way.
//
// A config that does not load is an error; template files that do not
// parse are a problem without receiver, since vigil refuses to apply them.
// ext is the external URL the server would run with: templates render the
// links they would send.
func CheckTemplates(configPath string, ext *url.URL) ([]TemplateProblem, error) {
	if ext == nil {
		return nil, ErrNoExternalURL
	}
	conf, err := config.LoadFile(configPath)
	if err != nil {
		return nil, fmt.Errorf("alerting: load %s: %w", configPath, err)
	}
	tmpl, err := template.FromGlobs(conf.Templates)
	if err != nil {
		return []TemplateProblem{{Field: "templates", Err: err.Error(),
			Fallback: "none: vigil does not apply a configuration whose template files fail to parse"}}, nil
	}
	tmpl.ExternalURL = externalURL(ext)
	var out []TemplateProblem
	for i := range conf.Receivers {
		rcv := &conf.Receivers[i]
		data := sampleData(tmpl, rcv.Name, ext)
		configs := integrationConfigs(rcv)
		keys := make([]integrationKey, 0, len(configs))
		for k := range configs {
			keys = append(keys, k)
		}
		slices.SortFunc(keys, func(a, b integrationKey) int { return cmp.Or(cmp.Compare(a.name, b.name), cmp.Compare(a.idx, b.idx)) })
		for _, k := range keys {
			c := configs[k]
			p := patcher{tmpl: tmpl, data: data}
			p.walk(c.ptr, defaultsFor(c.ptr.Type()), c.path, 0)
			out = append(out, p.problems(rcv.Name, fmt.Sprintf("%s[%d]", k.name, k.idx))...)
		}
	}
	return out, nil
}

// sampleData is the template data of a notification of one firing alert
// with the labels and annotations rules usually set.
func sampleData(tmpl *template.Template, receiver string, ext *url.URL) *template.Data {
	now := time.Now()
	a := &alert.Alert{Alert: model.Alert{
		Labels: model.LabelSet{
			"alertname": "ExampleAlert", "severity": "critical", "service": "example",
			"job": "example", "instance": "example:8080",
		},
		Annotations: model.LabelSet{
			"summary": "example summary", "description": "example description",
			"runbook_url": "http://localhost/runbook",
		},
		StartsAt:     now.Add(-5 * time.Minute),
		EndsAt:       now.Add(5 * time.Minute),
		GeneratorURL: GeneratorURL(ext, `sum(rate(http_requests_total{code=~"5.."}[5m])) > 1`),
	}, UpdatedAt: now}
	data := tmpl.Data(receiver, model.LabelSet{"alertname": "ExampleAlert"}, nil, notify.ReasonFirstNotification.String(), a)
	template.MarkRouteLabelsRendered(data)
	return data
}
