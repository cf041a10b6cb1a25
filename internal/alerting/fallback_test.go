package alerting

import (
	"reflect"
	"testing"

	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
)

// Every integration Alertmanager builds for a receiver is found back in the
// receiver's config, so that every kind gets the template fallback.
func TestIntegrationConfigsCoverBuiltIntegrations(t *testing.T) {
	conf, err := config.LoadFile("testdata/all_integrations.yml")
	if err != nil {
		t.Fatal(err)
	}
	rcv := &conf.Receivers[0]
	integrations, err := receiver.BuildReceiverIntegrations(*rcv, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	configs := integrationConfigs(rcv)
	if len(integrations) != 8 || len(configs) != len(integrations) {
		t.Fatalf("%d integrations, %d configs", len(integrations), len(configs))
	}
	for _, in := range integrations {
		c, ok := configs[integrationKey{in.Name(), in.Index()}]
		if !ok {
			t.Errorf("no config for integration %s", in.String())
			continue
		}
		want := reflect.ValueOf(rcv).Elem().FieldByName(c.field).Index(in.Index())
		if c.ptr.Pointer() != want.Pointer() {
			t.Errorf("integration %s maps to the wrong config", in.String())
		}
	}
}

func TestDefaultsFor(t *testing.T) {
	slack := defaultsFor(reflect.TypeFor[*config.SlackConfig]()).Interface().(*config.SlackConfig)
	if slack.Title != config.DefaultSlackConfig.Title || slack.Text != config.DefaultSlackConfig.Text {
		t.Errorf("slack defaults: title %q text %q", slack.Title, slack.Text)
	}
	email := defaultsFor(reflect.TypeFor[*config.EmailConfig]()).Interface().(*config.EmailConfig)
	if email.HTML != config.DefaultEmailConfig.HTML || email.Headers["Subject"] != config.DefaultEmailSubject {
		t.Errorf("email defaults: html %q headers %v", email.HTML, email.Headers)
	}
}
