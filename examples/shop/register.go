package shop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

// registrar keeps the demo's four instances in vigil's service registry
// (its Consul agent API), so that `vigil snapshot --service gateway` finds
// them, as it would find any registered service. Each instance has a TTL
// check the registrar passes every heartbeatEvery (a probe of vigil's
// would show up in the services' own spans and RED numbers), so a demo
// killed without deregistering turns critical and then leaves the
// registry by itself. The registry is in memory: after vigil restarts it
// is empty, so at every heartbeat the registrar also registers what is
// missing, as a Consul client does when its heartbeat is refused.
type registrar struct {
	url    string
	token  string
	client *http.Client
	logger *slog.Logger
	regs   []registration
}

// registration is the Consul agent registration body, the fields vigil
// reads.
type registration struct {
	ID, Name, Address string
	Port              int
	Meta              map[string]string
	Check             map[string]string
}

const heartbeatEvery = 10 * time.Second

func newRegistrar(url string, logger *slog.Logger) *registrar {
	return &registrar{url: strings.TrimRight(url, "/"), token: os.Getenv("VIGIL_BEARER_TOKEN"), client: &http.Client{Timeout: 5 * time.Second}, logger: logger}
}

// add registers the service listening on addr, with a 30 s TTL check: a
// demo that stops heartbeating is critical 30 s later and gone a minute
// after that.
func (r *registrar) add(name, addr string) {
	host, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	r.regs = append(r.regs, registration{
		ID: configInstance(name, addr), Name: name, Address: host, Port: p,
		Meta:  map[string]string{"version": "demo"},
		Check: map[string]string{"TTL": "30s", "Status": "passing", "DeregisterCriticalServiceAfter": "1m"},
	})
}

func (r *registrar) do(ctx context.Context, method, path string, body any) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, r.url+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	resp, err := r.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, b, nil
}

// sync registers the instances vigil does not hold and passes the checks
// of the others.
func (r *registrar) sync(ctx context.Context) error {
	code, body, err := r.do(ctx, http.MethodGet, "/v1/agent/services", nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("GET /v1/agent/services: HTTP %d", code)
	}
	var have map[string]json.RawMessage
	if err := json.Unmarshal(body, &have); err != nil {
		return fmt.Errorf("GET /v1/agent/services: %w", err)
	}
	for _, reg := range r.regs {
		if _, ok := have[reg.ID]; ok {
			code, body, err := r.do(ctx, http.MethodPut, "/v1/agent/check/pass/service:"+reg.ID, nil)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("heartbeat of %s: HTTP %d: %s", reg.ID, code, bytes.TrimSpace(body))
			}
			continue
		}
		code, body, err := r.do(ctx, http.MethodPut, "/v1/agent/service/register", reg)
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("registering %s: HTTP %d: %s", reg.ID, code, bytes.TrimSpace(body))
		}
		r.logger.Debug("registered in vigil's service registry", "id", reg.ID)
	}
	return nil
}

// run keeps the instances registered until ctx ends, then deregisters
// them.
func (r *registrar) run(ctx context.Context) {
	warned := false
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	for {
		if err := r.sync(ctx); err != nil && ctx.Err() == nil && !warned {
			r.logger.Warn("service registry: cannot register the shop's instances (vigil snapshot will not find them); retrying", "error", err.Error())
			warned = true
		} else if err == nil {
			warned = false
		}
		select {
		case <-ctx.Done():
			stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			for _, reg := range r.regs {
				_, _, _ = r.do(stop, http.MethodPut, "/v1/agent/service/deregister/"+reg.ID, nil)
			}
			return
		case <-t.C:
		}
	}
}
