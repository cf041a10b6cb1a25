package spanmetrics

import (
	"testing"
	"time"

	"go.opentelemetry.io/collector/pdata/ptrace"

	"github.com/vigil-observability/vigil/internal/changes"
)

// versioned is a batch of one span of service checkout from instance
// id at version v ("" leaves the attribute out).
func versioned(id, v string) ptrace.Traces {
	td := traces(span{service: "checkout", name: "GET /", kind: server, trace: 1, id: 1})
	attrs := td.ResourceSpans().At(0).Resource().Attributes()
	if id != "" {
		attrs.PutStr("service.instance.id", id)
	}
	if v != "" {
		attrs.PutStr("service.version", v)
	}
	return td
}

// The spans' service.version is written as traces_service_build_info,
// only for versions seen since the last flush, so that a service moving
// to a new version reads as one deploy.
func TestServiceBuildInfo(t *testing.T) {
	e := newEnv(t, Options{})
	e.rec.RecordSpans(versioned("c-1", "1.4.2"))
	e.rec.RecordSpans(versioned("", "1.4.2"))
	e.rec.RecordSpans(versioned("c-2", ""))
	at1 := e.flushAt(time.Second)
	e.wantValues(`traces_service_build_info`, at1, map[string]float64{
		`{__name__="traces_service_build_info", instance="c-1", service_name="checkout", version="1.4.2"}`: 1,
		`{__name__="traces_service_build_info", service_name="checkout", version="1.4.2"}`:                 1,
	})
	e.rec.RecordSpans(versioned("c-1", "1.4.2"))
	e.flushAt(time.Second)
	e.rec.RecordSpans(versioned("c-1", "1.5.0"))
	at3 := e.flushAt(time.Second)
	got, err := changes.Deploys(t.Context(), e.db, t0, at3)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Service != "checkout" || got[0].Instance != "c-1" || got[0].From != "1.4.2" || got[0].To != "1.5.0" ||
		!got[0].Time.Equal(at3.Truncate(time.Millisecond)) {
		t.Errorf("deploys: %+v", got)
	}
}
