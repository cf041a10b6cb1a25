package alerting

import (
	"reflect"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/common/model"
)

// Delivery is a route an alert would take: its receiver and how many
// integrations (webhooks, Slack channels, emails...) that receiver has.
type Delivery struct {
	Receiver     string
	Integrations int
	// Default is true when only the root route matched: the alert was not
	// routed on purpose.
	Default bool
}

// Route returns where an alert with these labels goes under the running
// configuration, as the dispatcher would route it.
func (am *Alertmanager) Route(ls model.LabelSet) []Delivery {
	am.mtx.Lock()
	conf := am.conf
	am.mtx.Unlock()
	return routeIn(conf, ls)
}

// integrations counts the notifier configs of the named receiver.
func integrations(conf *config.Config, name string) int {
	for _, rcv := range conf.Receivers {
		if rcv.Name != name {
			continue
		}
		n := 0
		v := reflect.ValueOf(rcv)
		for i := range v.NumField() {
			if f := v.Field(i); f.Kind() == reflect.Slice {
				n += f.Len()
			}
		}
		return n
	}
	return 0
}

// MatcherLabels returns the label names the routes below the root match on.
func (am *Alertmanager) MatcherLabels() []string {
	am.mtx.Lock()
	conf := am.conf
	am.mtx.Unlock()
	return matcherLabelsIn(conf)
}
