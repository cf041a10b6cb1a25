package guard

import (
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/vigil-observability/vigil/internal/configcentre"
	"github.com/vigil-observability/vigil/internal/slo"
)

func loadSLOs(t *testing.T) []slo.Spec {
	t.Helper()
	b, err := os.ReadFile("testdata/slos.yaml")
	if err != nil {
		t.Fatal(err)
	}
	specs, err := slo.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return specs
}

func TestCheck(t *testing.T) {
	specs := loadSLOs(t)
	for _, tc := range []struct {
		name, guard string
		reason      string // "" accepted
	}{
		{"none", ``, ""},
		{"null", `null`, ""},
		{"slo by name", `{"slo": "checkout-availability"}`, ""},
		{"slo by service and name", `{"slo": "shop/checkout-availability"}`, ""},
		{"promql", `{"promql": "sum(rate(http_requests_total{version=\"v2\",code=~\"5..\"}[5m])) > 1"}`, ""},
		{"unknown slo", `{"slo": "nope"}`, `no SLO "nope" in slos: (known: shop/checkout-availability, shop/latency, cart/latency)`},
		{"ambiguous slo", `{"slo": "latency"}`, `SLO "latency" is ambiguous: name one of shop/latency, cart/latency`},
		{"slo of another service", `{"slo": "cart/checkout-availability"}`, `no SLO "cart/checkout-availability"`},
		{"bad promql", `{"promql": "sum(rate(x[5m]"}`, "guard: promql:"},
		{"scalar promql", `{"promql": "1 > bool 0"}`, "must return an instant vector"},
		{"both", `{"slo": "latency", "promql": "up == 0"}`, `exactly one of "slo" or "promql"`},
		{"empty object", `{}`, `exactly one of "slo" or "promql"`},
		{"unknown field", `{"cohort": "x"}`, `unknown field "cohort"`},
		{"not an object", `"checkout"`, "guard:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Check(json.RawMessage(tc.guard), specs)
			if tc.reason == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, configcentre.ErrInvalid) || !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("Check = %v, want invalid with %q", err, tc.reason)
			}
		})
	}
	if err := Check(json.RawMessage(`{"slo": "latency"}`), nil); err == nil || !strings.Contains(err.Error(), "slos: in vigil.yaml has none") {
		t.Errorf("an SLO guard without slos: = %v", err)
	}
}

// An SLO guard is judged by the SLO's own page alert expression.
func TestSLOGuardIsThePageCondition(t *testing.T) {
	specs := loadSLOs(t)
	expr, judges, err := Guard{SLO: "checkout-availability"}.Expr(specs)
	if err != nil {
		t.Fatal(err)
	}
	if want := slo.PageCondition(specs[0], specs[0].SLOs[0]); expr != want {
		t.Errorf("expr %s, want %s", expr, want)
	}
	if judges != "the page (fast burn) condition of SLO shop/checkout-availability" {
		t.Errorf("judges %q", judges)
	}
}
