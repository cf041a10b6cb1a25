package alerting

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/client_golang/prometheus"
)

func TestOutboundPolicyCheck(t *testing.T) {
	allow, err := ParseAllowOutbound([]string{"169.254.10.0/24", "fd00:ec2::254"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr   string
		allow  []netip.Prefix
		reason string // "" when allowed
	}{
		{addr: "169.254.169.254", reason: "link-local metadata"},
		{addr: "169.254.170.2", reason: "link-local metadata"},
		{addr: "100.100.100.200", reason: "link-local metadata"},
		{addr: "fd00:ec2::254", reason: "link-local metadata"},
		{addr: "::ffff:169.254.169.254", reason: "link-local metadata"},
		{addr: "64:ff9b::a9fe:a9fe", reason: "link-local metadata"},
		{addr: "169.254.1.1", reason: "link-local"},
		{addr: "fe80::1", reason: "link-local"},
		{addr: "fe80::1%eth0", reason: "link-local"},
		{addr: "febf::1", reason: "link-local"},
		{addr: "::ffff:169.254.1.1", reason: "link-local"},
		// Ordinary destinations, private ones included: notification
		// receivers often live on the local network.
		{addr: "127.0.0.1"},
		{addr: "::1"},
		{addr: "10.1.2.3"},
		{addr: "192.168.1.1"},
		{addr: "100.100.100.201"},
		{addr: "203.0.113.7"},
		{addr: "fd00:ec2::253"},
		{addr: "fec0::1"},
		// The allow-list opens exactly what it names.
		{addr: "169.254.10.77", allow: allow},
		{addr: "::ffff:169.254.10.77", allow: allow},
		{addr: "fd00:ec2::254", allow: allow},
		{addr: "169.254.11.1", allow: allow, reason: "link-local"},
		{addr: "169.254.169.254", allow: allow, reason: "link-local metadata"},
	}
	for _, tt := range tests {
		p := newOutboundPolicy(tt.allow)
		err := p.check(netip.MustParseAddr(tt.addr))
		if tt.reason == "" {
			if err != nil {
				t.Errorf("%s (allow %v): %v, want allowed", tt.addr, tt.allow, err)
			}
			continue
		}
		var oe *OutboundError
		if !errors.As(err, &oe) || oe.Reason != tt.reason || !errors.Is(err, ErrOutboundRefused) {
			t.Errorf("%s (allow %v): %v, want refused as %s", tt.addr, tt.allow, err, tt.reason)
		}
	}
}

func TestParseAllowOutbound(t *testing.T) {
	got, err := ParseAllowOutbound([]string{"169.254.10.9/24", "169.254.169.254", "fe80::/64"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"169.254.10.0/24", "169.254.169.254/32", "fe80::/64"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for i := range want {
		if got[i].String() != want[i] {
			t.Errorf("[%d] = %s, want %s", i, got[i], want[i])
		}
	}
	for _, bad := range []string{"metadata", "169.254.0.0/33", ""} {
		if _, err := ParseAllowOutbound([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestOutboundControl(t *testing.T) {
	p := newOutboundPolicy(nil)
	err := p.control("tcp4", "169.254.169.254:80", nil)
	want := "outbound address 169.254.169.254 is link-local metadata, not allowed: allow it in vigil.yaml alerting.allow_outbound"
	if err == nil || err.Error() != want {
		t.Errorf("control: %v, want %q", err, want)
	}
	if err := p.control("tcp6", "[fe80::1%lo]:443", nil); err == nil || !strings.Contains(err.Error(), "fe80::1 is link-local,") {
		t.Errorf("control fe80::1%%lo: %v", err)
	}
	if err := p.control("tcp4", "127.0.0.1:9093", nil); err != nil {
		t.Errorf("control loopback: %v", err)
	}
	if err := p.control("tcp", "not-an-address", nil); !errors.Is(err, ErrOutboundRefused) {
		t.Errorf("control with an unparsable address: %v, want refused", err)
	}
}

// TestOutboundDialRefusesResolvedName dials a host name that a DNS server
// answers with the metadata address: the check sees the resolved address.
func TestOutboundDialRefusesResolvedName(t *testing.T) {
	dns := fakeDNS(t, map[string]netip.Addr{
		"metadata.vigil.test.": netip.MustParseAddr("169.254.169.254"),
		"local.vigil.test.":    netip.MustParseAddr("127.0.0.1"),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	_, port, _ := net.SplitHostPort(ln.Addr().String())

	d := newOutboundPolicy(nil).dialer()
	d.Resolver = &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "udp", dns)
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	begin := time.Now()
	_, err = d.DialContext(ctx, "tcp", net.JoinHostPort("metadata.vigil.test", port))
	var oe *OutboundError
	if !errors.As(err, &oe) || oe.Addr != netip.MustParseAddr("169.254.169.254") {
		t.Fatalf("dial metadata.vigil.test: %v, want refused for 169.254.169.254", err)
	}
	if el := time.Since(begin); el > time.Second {
		t.Errorf("refusal took %v: it must not wait for a connection", el)
	}

	// The same dialer reaches an allowed address by name.
	c, err := d.DialContext(ctx, "tcp", net.JoinHostPort("local.vigil.test", port))
	if err != nil {
		t.Fatalf("dial local.vigil.test: %v", err)
	}
	c.Close()
}

// fakeDNS serves A queries for names on UDP and answers everything else
// with no records. It returns its address.
func fakeDNS(t *testing.T, names map[string]netip.Addr) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := dnsAnswer(buf[:n], names); resp != nil {
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

// dnsAnswer answers a one-question query (RFC 1035 section 4).
func dnsAnswer(q []byte, names map[string]netip.Addr) []byte {
	if len(q) < 12 {
		return nil
	}
	// The question: labels, then type and class.
	i := 12
	var name strings.Builder
	for i < len(q) && q[i] != 0 {
		l := int(q[i])
		if i+1+l > len(q) {
			return nil
		}
		name.Write(q[i+1 : i+1+l])
		name.WriteByte('.')
		i += 1 + l
	}
	end := i + 5 // the terminating zero, type, class
	if end > len(q) {
		return nil
	}
	qtype := binary.BigEndian.Uint16(q[i+1:])
	resp := append([]byte{}, q[:end]...)
	resp[2], resp[3] = 0x81, 0x80 // a response, recursion available, no error
	binary.BigEndian.PutUint16(resp[4:], 1)
	binary.BigEndian.PutUint16(resp[8:], 0)
	binary.BigEndian.PutUint16(resp[10:], 0)
	ip, ok := names[strings.ToLower(name.String())]
	if !ok || qtype != 1 || !ip.Is4() {
		binary.BigEndian.PutUint16(resp[6:], 0)
		return resp
	}
	binary.BigEndian.PutUint16(resp[6:], 1)
	a := ip.As4()
	resp = append(resp, 0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4)
	return append(resp, a[:]...)
}

// TestOutboundWebhook runs notifications through an Alertmanager: a webhook
// at the metadata address, one redirected there and one sent in the
// template fallback form fail with the policy's error, fast, while a
// webhook on loopback is delivered.
func TestOutboundWebhook(t *testing.T) {
	ok := newReceiver(t)
	redirect := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://169.254.169.254/latest/meta-data/iam/", http.StatusFound)
	}))
	t.Cleanup(redirect.Close)

	dir := t.TempDir()
	cfg := strings.NewReplacer("OK", ok.srv.URL, "REDIRECT", redirect.URL).Replace(`
route:
  receiver: ok
  group_by: [alertname]
  group_wait: 10ms
  group_interval: 1h
  repeat_interval: 1h
  routes:
  - {matchers: [alertname="ToMetadata"], receiver: metadata}
  - {matchers: [alertname="ToRedirect"], receiver: redirect}
  - {matchers: [alertname="ToFallback"], receiver: fallback}
receivers:
- name: ok
  webhook_configs: [{url: OK}]
- name: metadata
  webhook_configs: [{url: "http://169.254.169.254/latest/meta-data/"}]
- name: redirect
  webhook_configs: [{url: REDIRECT}]
- name: fallback
  webhook_configs:
  - url: "http://[::ffff:169.254.169.254]/"
    payload:
      text: '{{ template "no.such.template" . }}'
`)
	am, err := New(Options{
		ConfigFile:  writeConfig(t, dir, cfg, ""),
		DataDir:     filepath.Join(dir, "data"),
		ExternalURL: testExternalURL,
		Logger:      slog.New(slog.DiscardHandler),
		Registerer:  prometheus.NewRegistry(),
		// Allowing another link-local range leaves the metadata address refused.
		AllowOutbound: []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24")},
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = am.Run(context.Background())
	}()
	t.Cleanup(func() { am.Stop(); <-done })

	begin := time.Now()
	for _, name := range []string{"ToOK", "ToMetadata", "ToRedirect", "ToFallback"} {
		am.Send(firing(map[string]string{"alertname": name}, nil))
	}
	ok.waitFor(t, 1, 5*time.Second)

	want := map[string]string{
		"metadata webhook[0]": "outbound address 169.254.169.254 is link-local metadata, not allowed: allow it in vigil.yaml alerting.allow_outbound",
		"redirect webhook[0]": "outbound address 169.254.169.254 is link-local metadata, not allowed",
		// The notifier rebuilt with the standard payload dials through the
		// policy too.
		"fallback webhook[0]": "is link-local metadata, not allowed",
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []DeliveryStatus
	for {
		got = am.DeliveryStatus(begin)
		failed := 0
		for _, s := range got {
			if s.Failures > 0 {
				failed++
			}
		}
		if failed == len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	seen := 0
	for _, s := range got {
		key := s.Receiver + " " + s.Integration
		msg, refused := want[key]
		if !refused {
			if s.Failures != 0 || s.LastSuccess.IsZero() {
				t.Errorf("%s: %+v, want delivered", key, s)
			}
			continue
		}
		seen++
		if key == "fallback webhook[0]" && s.TemplateErrors == 0 {
			t.Errorf("%s: no template error, so the fallback form was not tried", key)
		}
		if s.Failures == 0 || !s.LastSuccess.IsZero() || !strings.Contains(s.LastError, msg) {
			t.Errorf("%s: %+v, want failures with %q", key, s, msg)
		}
		// The first attempt follows group_wait (10ms): a dial that waited
		// for a connection would take the notifier's timeout instead.
		if first := s.LastFailure.Sub(begin); s.Failures == 1 && first > 2*time.Second {
			t.Errorf("%s: failed after %v, want a refusal before any connection", key, first)
		}
	}
	if seen != len(want) {
		t.Errorf("delivery status %+v, want failures for %v", got, want)
	}
}

type stubResolver map[string][]netip.Addr

func (r stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := r[host]; ok {
		return a, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
}

type countingNotifier struct{ calls int }

func (n *countingNotifier) Notify(context.Context, ...*alert.Alert) (bool, error) {
	n.calls++
	return false, nil
}

// TestEmailGuard covers email, whose notifier dials its smarthost itself.
func TestEmailGuard(t *testing.T) {
	res := stubResolver{
		"smtp.example.com":     {netip.MustParseAddr("192.0.2.25")},
		"metadata.example.com": {netip.MustParseAddr("192.0.2.26"), netip.MustParseAddr("169.254.169.254")},
		"relay.example.com":    {netip.MustParseAddr("169.254.10.25")},
	}
	tests := []struct {
		host    string
		allow   []netip.Prefix
		errPart string
		retry   bool
	}{
		{host: "smtp.example.com"},
		{host: "192.0.2.25"},
		{host: "metadata.example.com", errPart: `smarthost "metadata.example.com": outbound address 169.254.169.254 is link-local metadata`},
		{host: "169.254.169.254", errPart: "outbound address 169.254.169.254 is link-local metadata"},
		{host: "relay.example.com", errPart: "outbound address 169.254.10.25 is link-local,"},
		{host: "relay.example.com", allow: []netip.Prefix{netip.MustParsePrefix("169.254.10.0/24")}},
		{host: "nowhere.example.com", errPart: "no such host", retry: true},
	}
	for _, tt := range tests {
		next := &countingNotifier{}
		g := &emailGuard{host: tt.host, policy: newOutboundPolicy(tt.allow), resolver: res}
		g.next = notifyIntegration(next)
		retry, err := g.Notify(context.Background())
		if tt.errPart == "" {
			if err != nil || next.calls != 1 {
				t.Errorf("%s: %v, %d sends; want sent", tt.host, err, next.calls)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errPart) || retry != tt.retry || next.calls != 0 {
			t.Errorf("%s: retry %v, %v, %d sends; want refused with %q, retry %v", tt.host, retry, err, next.calls, tt.errPart, tt.retry)
		}
	}
}

// TestBuildIntegrationsGuardsEmail checks that email integrations built for
// a receiver are the guarded ones.
func TestBuildIntegrationsGuardsEmail(t *testing.T) {
	conf, err := config.Load(`
route: {receiver: mail}
receivers:
- name: mail
  email_configs:
  - {to: ops@example.com, from: vigil@example.com, smarthost: "169.254.169.254:25", require_tls: false}
  webhook_configs: [{url: "http://127.0.0.1:1/"}]
`)
	if err != nil {
		t.Fatal(err)
	}
	integrations, err := newOutboundPolicy(nil).buildIntegrations(conf.Receivers[0], nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	var found bool
	for _, in := range integrations {
		if in.Name() != "email" {
			continue
		}
		found = true
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := in.Notify(ctx)
		cancel()
		if err == nil || !strings.Contains(err.Error(), "outbound address 169.254.169.254 is link-local metadata") {
			t.Errorf("email to a metadata smarthost: %v", err)
		}
	}
	if !found {
		t.Fatalf("no email integration in %v", integrations)
	}
}

type sendResolved bool

func (s sendResolved) SendResolved() bool { return bool(s) }

func notifyIntegration(n notify.Notifier) notify.Integration {
	return notify.NewIntegration(n, sendResolved(true), "email", 0, "mail")
}
