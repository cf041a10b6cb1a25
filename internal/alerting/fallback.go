package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v2"
)

// templateErrorNotice replaces a templated field that fails to render and
// has no working default, so the notification still goes out.
const templateErrorNotice = "[template failed to render; see the vigil log]"

// withTemplateFallback wraps each integration of a receiver so that a
// notification whose templates fail to render is reported (metric and log)
// and then sent in a fallback form instead of being dropped: every templated
// field that fails is replaced by the integration's default for that field
// (Alertmanager's default templates) or, when that fails too, by a notice; a
// custom webhook payload that fails is replaced by Alertmanager's standard
// webhook payload.
//
// The templated fields are rendered against the notification's data before
// the integration runs: that is one extra rendering per notification, and
// it catches failures that an integration would hide (Slack's sends empty
// fields) or report only as text.
//
// build rebuilds an integration from the patched config.
//
// Every attempt and every template failure is also noted in deliveries,
// which DeliveryStatus reads.
func withTemplateFallback(rcv *config.Receiver, integrations []notify.Integration, build buildFunc, tmpl *template.Template, logger *slog.Logger, templateErrors *prometheus.CounterVec, deliveries *deliveryLog) []notify.Integration {
	configs := integrationConfigs(rcv)
	out := make([]notify.Integration, 0, len(integrations))
	for _, in := range integrations {
		conf, ok := configs[integrationKey{in.Name(), in.Index()}]
		if !ok {
			out = append(out, in)
			continue
		}
		f := &fallbackNotifier{
			primary:  in,
			build:    build,
			receiver: rcv.Name,
			conf:     conf,
			defaults: defaultsFor(conf.ptr.Type()),
			tmpl:     tmpl,
			logger:   logger.With("receiver", rcv.Name, "integration", in.String()),
			errors:   templateErrors.WithLabelValues(rcv.Name, in.Name()),
			log:      deliveries,
			key:      deliveryKey{rcv.Name, in.String()},
		}
		out = append(out, notify.NewIntegration(f, &f.primary, in.Name(), in.Index(), rcv.Name))
	}
	return out
}

type integrationKey struct {
	name string
	idx  int
}

// integrationConf is one *XxxConfig of a receiver and the Receiver field
// holding it (for instance SlackConfigs), to rebuild a one-integration
// receiver from a patched copy; path is where it is in alertmanager.yml
// (slack_configs[0]), to name the fields that fail.
type integrationConf struct {
	field string
	path  string
	ptr   reflect.Value
}

// integrationConfigs maps the (name, index) of each integration that
// receiver.BuildReceiverIntegrations builds to its config. The name is the
// YAML key without "_configs" (webhook_configs: "webhook"), which is how
// Alertmanager names its integrations.
func integrationConfigs(rcv *config.Receiver) map[integrationKey]integrationConf {
	out := map[integrationKey]integrationConf{}
	v := reflect.ValueOf(rcv).Elem()
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		name, ok := strings.CutSuffix(tag, "_configs")
		if !ok || f.Type.Kind() != reflect.Slice {
			continue
		}
		s := v.Field(i)
		for j := range s.Len() {
			if e := s.Index(j); e.Kind() == reflect.Pointer && !e.IsNil() {
				out[integrationKey{name, j}] = integrationConf{field: f.Name, path: fmt.Sprintf("%s[%d]", tag, j), ptr: e}
			}
		}
	}
	return out
}

// buildFunc builds a receiver's integrations (outboundPolicy.buildIntegrations).
type buildFunc func(config.Receiver, *template.Template, *slog.Logger) ([]notify.Integration, error)

type fallbackNotifier struct {
	primary  notify.Integration
	build    buildFunc
	receiver string
	conf     integrationConf
	defaults reflect.Value // the config type's defaults
	tmpl     *template.Template
	logger   *slog.Logger
	errors   prometheus.Counter
	log      *deliveryLog
	key      deliveryKey
}

func (f *fallbackNotifier) Notify(ctx context.Context, alerts ...*alert.Alert) (bool, error) {
	retry, err := f.notify(ctx, alerts...)
	f.log.attempt(f.key, err)
	return retry, err
}

func (f *fallbackNotifier) notify(ctx context.Context, alerts ...*alert.Alert) (bool, error) {
	// Render first: some integrations (Slack) swallow template errors and
	// send empty fields, so the integration's own error cannot be relied on.
	data := notify.GetTemplateData(ctx, f.tmpl, alerts, f.logger)
	p := patcher{tmpl: f.tmpl, data: data}
	patched, changed := p.walk(f.conf.ptr, f.defaults, f.conf.path, 0)
	if !changed {
		return f.primary.Notify(ctx, alerts...)
	}
	f.errors.Inc()
	f.log.templateFailed(f.key, p.problems(f.key.receiver, f.key.integration))
	f.logger.Error("notification template failed to render; sending the fallback form",
		"fields", p.failed, "err", errors.Join(p.errs...))

	rcv := config.Receiver{Name: f.receiver}
	field := reflect.ValueOf(&rcv).Elem().FieldByName(f.conf.field)
	one := reflect.MakeSlice(field.Type(), 1, 1)
	one.Index(0).Set(patched)
	field.Set(one)
	integrations, err := f.build(rcv, f.tmpl, f.logger)
	if err != nil || len(integrations) != 1 {
		return false, fmt.Errorf("building the fallback %s notifier: %w", f.primary.Name(), err)
	}
	return integrations[0].Notify(ctx, alerts...)
}

// defaultsFor returns the default value of an integration config type
// (pointer to struct), as its UnmarshalYAML fills it in before validating;
// the zero value if it has none.
func defaultsFor(ptrType reflect.Type) reflect.Value {
	p := reflect.New(ptrType.Elem())
	_ = yaml.Unmarshal([]byte("{}"), p.Interface()) // validation errors are expected: only the defaults matter
	if ptrType == reflect.TypeFor[*config.EmailConfig]() {
		// The default Subject header is filled in from the global config.
		ec := p.Interface().(*config.EmailConfig)
		ec.Headers = map[string]string{"Subject": config.DefaultEmailSubject}
	}
	return p
}

// patcher renders every templated string of a config against data and
// builds a copy in which those that fail are replaced. It copies only along
// the paths it changes; everything else is shared with the original.
type patcher struct {
	tmpl   *template.Template
	data   *template.Data
	failed []string // the YAML paths of the fields that fail
	errs   []error
	// fallbacks says, for each failed field, what is sent instead.
	fallbacks []string
}

func (p *patcher) renders(s string, html bool) error {
	var err error
	if html {
		_, err = p.tmpl.ExecuteHTMLString(s, p.data)
	} else {
		_, err = p.tmpl.ExecuteTextString(s, p.data)
	}
	return err
}

// failing reports whether any templated string under v fails to render.
func (p *patcher) failing(v reflect.Value) bool {
	sub := &patcher{tmpl: p.tmpl, data: p.data}
	sub.walk(v, reflect.Value{}, "", 0)
	return len(sub.failed) > 0
}

// walk returns the patched value and whether it differs from v.
func (p *patcher) walk(v, def reflect.Value, path string, depth int) (reflect.Value, bool) {
	if depth > 12 || !v.IsValid() {
		return v, false
	}
	switch v.Kind() {
	case reflect.String:
		s := v.String()
		if !strings.Contains(s, "{{") {
			return v, false
		}
		html := strings.HasSuffix(path, ".html")
		err := p.renders(s, html)
		if err == nil {
			return v, false
		}
		p.failed = append(p.failed, path)
		p.errs = append(p.errs, err)
		repl := templateErrorNotice
		fallback := fmt.Sprintf("the notice %q", templateErrorNotice)
		if def.IsValid() && def.Kind() == reflect.String && p.renders(def.String(), html) == nil {
			repl = def.String()
			fallback = "Alertmanager's default for the field"
			if repl == "" {
				fallback = "an empty value (the field's default)"
			}
		}
		p.fallbacks = append(p.fallbacks, fallback)
		return reflect.ValueOf(repl).Convert(v.Type()), true

	case reflect.Pointer:
		if v.IsNil() || v.Elem().Kind() != reflect.Struct {
			return v, false
		}
		var defElem reflect.Value
		if def.IsValid() && def.Kind() == reflect.Pointer && !def.IsNil() {
			defElem = def.Elem()
		}
		ne, changed := p.walk(v.Elem(), defElem, path, depth+1)
		if !changed {
			return v, false
		}
		np := reflect.New(v.Elem().Type())
		np.Elem().Set(ne)
		return np, true

	case reflect.Struct:
		var out reflect.Value
		for i := range v.NumField() {
			sf := v.Type().Field(i)
			if !sf.IsExported() {
				continue
			}
			var fdef reflect.Value
			if def.IsValid() && def.Type() == v.Type() {
				fdef = def.Field(i)
			}
			nf, changed := p.walk(v.Field(i), fdef, fieldPath(path, sf), depth+1)
			if !changed {
				continue
			}
			if !out.IsValid() {
				out = reflect.New(v.Type()).Elem()
				out.Set(v)
			}
			out.Field(i).Set(nf)
		}
		if !out.IsValid() {
			return v, false
		}
		return out, true

	case reflect.Interface:
		// Free-form values (a webhook's custom payload): if anything in it
		// fails, the whole value falls back to the default, so the receiver
		// gets Alertmanager's standard form rather than one with holes.
		if v.IsNil() || !p.failing(v.Elem()) {
			return v, false
		}
		n := len(p.fallbacks)
		p.walk(v.Elem(), reflect.Value{}, path, depth+1) // records the failures
		for i := n; i < len(p.fallbacks); i++ {
			p.fallbacks[i] = "the integration's standard form: the whole " + path + " is left out"
		}
		if def.IsValid() && def.Type() == v.Type() {
			return def, true
		}
		return reflect.Zero(v.Type()), true

	case reflect.Slice:
		var out reflect.Value
		for i := range v.Len() {
			ne, changed := p.walk(v.Index(i), reflect.Value{}, fmt.Sprintf("%s[%d]", path, i), depth+1)
			if !changed {
				continue
			}
			if !out.IsValid() {
				out = reflect.MakeSlice(v.Type(), v.Len(), v.Len())
				reflect.Copy(out, v)
			}
			out.Index(i).Set(ne)
		}
		if !out.IsValid() {
			return v, false
		}
		return out, true

	case reflect.Map:
		var out reflect.Value
		for it := v.MapRange(); it.Next(); {
			k := it.Key()
			var edef reflect.Value
			if def.IsValid() && def.Type() == v.Type() && !def.IsNil() {
				edef = def.MapIndex(k)
			}
			ne, changed := p.walk(it.Value(), edef, fmt.Sprintf("%s[%v]", path, k.Interface()), depth+1)
			if !changed {
				continue
			}
			if !out.IsValid() {
				out = reflect.MakeMapWithSize(v.Type(), v.Len())
				for all := v.MapRange(); all.Next(); {
					out.SetMapIndex(all.Key(), all.Value())
				}
			}
			out.SetMapIndex(k, ne)
		}
		if !out.IsValid() {
			return v, false
		}
		return out, true
	}
	return v, false
}

// fieldPath extends a YAML path with a struct field's YAML name; inlined
// fields add nothing.
func fieldPath(path string, sf reflect.StructField) string {
	name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
	switch {
	case name == "" && strings.Contains(opts, "inline"):
		return path
	case name == "" || name == "-":
		name = strings.ToLower(sf.Name)
	}
	return path + "." + name
}

// problems describes the failed fields.
func (p *patcher) problems(receiver, integration string) []TemplateProblem {
	out := make([]TemplateProblem, len(p.failed))
	for i, field := range p.failed {
		out[i] = TemplateProblem{Receiver: receiver, Integration: integration, Field: field, Err: p.errs[i].Error(), Fallback: p.fallbacks[i]}
	}
	return out
}
