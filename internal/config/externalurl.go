package config

import (
	"fmt"
	"net"
	"net/url"
	"os"
)

// ExternalURL is how clients reach vigil's HTTP address (http_addr): https
// when the web config turns TLS on, and the address's host, or this
// machine's name when the address listens on every interface (empty,
// 0.0.0.0 or ::), since a client cannot connect to those. Everything vigil
// links to itself with starts with it: alerts' generator URLs, the
// Alertmanager's notification links (.ExternalURL), rule templates'
// $externalURL and the Prometheus API's web.external-url, so they cannot
// disagree.
func (c *Config) ExternalURL() (*url.URL, error) {
	scheme := "http"
	if c.Auth != nil && c.Auth.TLSConfig() != nil {
		scheme = "https"
	}
	return externalURL(scheme, c.HTTPAddr, os.Hostname)
}

func externalURL(scheme, addr string, hostname func() (string, error)) (*url.URL, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("http_addr %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		// Prometheus's fallback too; the machine's name reaches this
		// listener from other machines, where "localhost" would not.
		if host, err = hostname(); err != nil || host == "" {
			host = "localhost"
		}
	}
	return &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, port)}, nil
}
