package alerting

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/prometheus/alertmanager/alert"
	"github.com/prometheus/alertmanager/config"
	"github.com/prometheus/alertmanager/config/receiver"
	"github.com/prometheus/alertmanager/notify"
	"github.com/prometheus/alertmanager/template"
	commoncfg "github.com/prometheus/common/config"
)

// ErrOutboundRefused wraps every connection the outbound policy refuses.
var ErrOutboundRefused = errors.New("outbound address not allowed")

// OutboundError is a connection to a refused address.
type OutboundError struct {
	Addr   netip.Addr
	Reason string // "link-local" or "link-local metadata"
}

func (e *OutboundError) Error() string {
	return fmt.Sprintf("outbound address %s is %s, not allowed: allow it in vigil.yaml alerting.allow_outbound", e.Addr, e.Reason)
}

func (e *OutboundError) Unwrap() error { return ErrOutboundRefused }

// metadataAddrs are cloud metadata services outside the link-local ranges,
// or in them but worth naming: a notification URL that reaches one of them
// can leak the instance's credentials into a webhook receiver's logs.
var metadataAddrs = []netip.Prefix{
	netip.MustParsePrefix("169.254.169.254/32"), // AWS, GCP, Azure, OpenStack, ...
	netip.MustParsePrefix("169.254.170.2/32"),   // AWS ECS task credentials
	netip.MustParsePrefix("100.100.100.200/32"), // Alibaba Cloud
	netip.MustParsePrefix("fd00:ec2::254/128"),  // AWS over IPv6
}

var linkLocal = []netip.Prefix{
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("fe80::/10"),
}

// nat64 is the well-known NAT64 prefix (RFC 6052): on a NAT64 network
// 64:ff9b::a9fe:a9fe reaches 169.254.169.254.
var nat64 = netip.MustParsePrefix("64:ff9b::/96")

// outboundPolicy refuses connections to link-local and cloud metadata
// addresses unless they are in allow. It is applied when a connection is
// dialled, to the address actually dialled, so a hostname that resolves to
// such an address, or a redirect to one, is refused too.
type outboundPolicy struct {
	allow []netip.Prefix
	// fence, when set, guards every notification (see fenceIntegrations).
	fence *LeaderFence
}

func newOutboundPolicy(allow []netip.Prefix) *outboundPolicy {
	return &outboundPolicy{allow: allow}
}

// check returns an *OutboundError if ip may not be connected to.
func (p *outboundPolicy) check(ip netip.Addr) error {
	ip = ip.WithZone("")
	orig := ip
	ip = ip.Unmap()
	if nat64.Contains(ip) {
		b := ip.As16()
		ip = netip.AddrFrom4([4]byte(b[12:]))
	}
	reason := ""
	for _, pfx := range metadataAddrs {
		if pfx.Contains(ip) {
			reason = "link-local metadata"
		}
	}
	if reason == "" {
		for _, pfx := range linkLocal {
			if pfx.Contains(ip) {
				reason = "link-local"
			}
		}
	}
	if reason == "" {
		return nil
	}
	for _, pfx := range p.allow {
		if pfx.Contains(ip) || pfx.Contains(orig) {
			return nil
		}
	}
	return &OutboundError{Addr: orig, Reason: reason}
}

// control is a net.Dialer Control function: it runs after name resolution
// and before connect(2), so a refused address gets no packet at all.
func (p *outboundPolicy) control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// Fail closed: every TCP/UDP dial hands Control an ip:port.
		return fmt.Errorf("%w: cannot parse dialled address %q: %w", ErrOutboundRefused, address, err)
	}
	return p.check(ap.Addr())
}

// dialer is what notifiers' HTTP clients dial with; the timeouts are those
// of prometheus/common's default transport.
func (p *outboundPolicy) dialer() *net.Dialer {
	return &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: p.control}
}

// DialContext dials like net.Dialer, refusing addresses the policy refuses.
func (p *outboundPolicy) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return p.dialer().DialContext(ctx, network, address)
}

// OutboundDialContext returns a DialContext that refuses what
// notifications' connections refuse: link-local and cloud metadata
// addresses outside allow (ParseAllowOutbound). Other components that
// connect where a caller says, such as the service registry's HTTP
// checks, dial through it too.
func OutboundDialContext(allow []netip.Prefix) func(ctx context.Context, network, address string) (net.Conn, error) {
	return newOutboundPolicy(allow).DialContext
}

// httpOptions makes the HTTP clients Alertmanager's integrations build dial
// through the policy.
func (p *outboundPolicy) httpOptions() []commoncfg.HTTPClientOption {
	return []commoncfg.HTTPClientOption{commoncfg.WithDialContextFunc(p.DialContext)}
}

// buildIntegrations builds a receiver's integrations with every outbound
// connection under the policy: the HTTP-based ones dial through it; email,
// which dials its smarthost itself, is checked by emailGuard.
func (p *outboundPolicy) buildIntegrations(rcv config.Receiver, tmpl *template.Template, logger *slog.Logger) ([]notify.Integration, error) {
	integrations, err := receiver.BuildReceiverIntegrations(rcv, tmpl, logger, p.httpOptions()...)
	if err != nil {
		return nil, err
	}
	for i, in := range integrations {
		if in.Name() != "email" || in.Index() >= len(rcv.EmailConfigs) || rcv.EmailConfigs[in.Index()] == nil {
			continue
		}
		g := &emailGuard{next: in, host: rcv.EmailConfigs[in.Index()].Smarthost.Host, policy: p, resolver: net.DefaultResolver}
		integrations[i] = notify.NewIntegration(g, &g.next, in.Name(), in.Index(), rcv.Name)
	}
	if p.fence != nil {
		return p.fenceIntegrations(rcv, integrations, tmpl, logger)
	}
	return integrations, nil
}

// emailGuard checks an email integration's smarthost before each delivery.
// Alertmanager's email notifier dials with its own net.Dialer, so this
// resolves the host itself and refuses if any address is refused; a DNS
// answer that changes between this lookup and the notifier's is not caught.
type emailGuard struct {
	next     notify.Integration
	host     string
	policy   *outboundPolicy
	resolver interface {
		LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
	}
}

func (g *emailGuard) Notify(ctx context.Context, alerts ...*alert.Alert) (bool, error) {
	addrs, err := g.resolve(ctx)
	if err != nil {
		return true, fmt.Errorf("resolve smarthost %q: %w", g.host, err)
	}
	for _, a := range addrs {
		if err := g.policy.check(a); err != nil {
			// Retrying cannot help: the configuration has to change.
			return false, fmt.Errorf("smarthost %q: %w", g.host, err)
		}
	}
	return g.next.Notify(ctx, alerts...)
}

func (g *emailGuard) resolve(ctx context.Context) ([]netip.Addr, error) {
	if ip, err := netip.ParseAddr(g.host); err == nil {
		return []netip.Addr{ip}, nil
	}
	return g.resolver.LookupNetIP(ctx, "ip", g.host)
}

// ParseAllowOutbound parses alerting.allow_outbound: CIDR ranges, or single
// addresses meaning just that address.
func ParseAllowOutbound(ss []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(ss))
	for _, s := range ss {
		if pfx, err := netip.ParsePrefix(s); err == nil {
			out = append(out, pfx.Masked())
			continue
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("allow_outbound %q: not an address or CIDR range", s)
		}
		out = append(out, netip.PrefixFrom(ip, ip.BitLen()))
	}
	return out, nil
}
