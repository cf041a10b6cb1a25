package config

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestAlertingAllowOutbound(t *testing.T) {
	c, err := Parse([]byte("alerting:\n  allow_outbound: [169.254.10.0/24, 169.254.169.254, \"fd00:ec2::254/128\"]\n"), t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"169.254.10.0/24", "169.254.169.254", "fd00:ec2::254/128"}; !slices.Equal(c.Alerting.AllowOutbound, want) {
		t.Errorf("allow_outbound = %v, want %v", c.Alerting.AllowOutbound, want)
	}
	if d := Defaults(); len(d.Alerting.AllowOutbound) != 0 {
		t.Errorf("default allow_outbound = %v, want none", d.Alerting.AllowOutbound)
	}

	_, err = Parse([]byte("alerting:\n  allow_outbound: [metadata.internal]\n"), t.TempDir(), nil)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), `alerting.allow_outbound "metadata.internal"`) {
		t.Errorf("a host name in allow_outbound: %v", err)
	}
}
