package shop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vigil "github.com/vigil-observability/vigil/sdk"
	"github.com/vigil-observability/vigil/sdk/configcentre"
)

// The configuration centre item payments reads: its card processor's
// timeout and a feature flag. The demo puts FormalSettings there when the
// item does not exist yet.
const (
	settingsNamespace = "shop"
	settingsGroup     = "payments"
	settingsKey       = "settings"
	// SettingsItem is the item's namespace/group/key.
	SettingsItem = settingsNamespace + "/" + settingsGroup + "/" + settingsKey
)

// FormalSettings is the item's content the demo seeds (YAML).
const FormalSettings = "# payments: the card processor's timeout, and whether charges are fraud-checked\ntimeout: 800ms\nfraud_check: true\n"

// BadSettings is the gray content of the bad-config fault: a processor
// timeout shorter than any charge takes, so every charge of the gray
// cohort fails with DeadlineExceeded.
const BadSettings = "# bad-config fault: shorter than any charge takes\ntimeout: 1ms\nfraud_check: true\n"

// BadConfigGuard is the SLO that guards the bad-config gray: the payments
// charge SLO of examples/vigil.yaml.
const BadConfigGuard = "payments/charge-errors"

// paymentSettings is the decoded item.
type paymentSettings struct {
	// Timeout bounds the card processor's answer.
	Timeout time.Duration
	// FraudCheck runs the fraud check before the charge.
	FraudCheck bool
}

// defaultSettings are used until the item is read, and for as long as the
// configuration centre cannot be reached and no cached value exists. They
// equal FormalSettings.
var defaultSettings = paymentSettings{Timeout: 800 * time.Millisecond, FraudCheck: true}

// settingsDoc is the item's YAML shape.
type settingsDoc struct {
	Timeout    string `yaml:"timeout" json:"timeout"`
	FraudCheck *bool  `yaml:"fraud_check" json:"fraud_check"`
}

// decodeSettings reads a snapshot over the defaults; a field left out keeps
// its default.
func decodeSettings(s configcentre.Snapshot) (paymentSettings, error) {
	var doc settingsDoc
	if err := s.Decode(&doc); err != nil {
		return paymentSettings{}, err
	}
	ps := defaultSettings
	if doc.Timeout != "" {
		d, err := time.ParseDuration(doc.Timeout)
		if err != nil || d <= 0 {
			return paymentSettings{}, fmt.Errorf("version %d: timeout %q is not a positive duration", s.Version, doc.Timeout)
		}
		ps.Timeout = d
	}
	if doc.FraudCheck != nil {
		ps.FraudCheck = *doc.FraudCheck
	}
	return ps, nil
}

// watchSettings keeps cur on the item's value for this instance: at once
// from what svc.Config fetched (or its disk cache), then at every change.
// Without a configuration centre, or when the item cannot be decoded, cur
// keeps the defaults.
func watchSettings(svc *vigil.Service, cur *atomic.Pointer[paymentSettings]) {
	def := defaultSettings
	cur.Store(&def)
	v, err := svc.Config(settingsNamespace, settingsGroup, settingsKey)
	if err != nil {
		level := slog.LevelWarn
		if errors.Is(err, vigil.ErrNoConfigCentre) {
			level = slog.LevelInfo
		}
		svc.Logger.Log(context.Background(), level, "payments: settings not watched; using the defaults", "error", err.Error())
		return
	}
	var (
		mu      sync.Mutex
		changed bool
	)
	apply := func(s configcentre.Snapshot) {
		ps, err := decodeSettings(s)
		if err != nil {
			if !errors.Is(err, configcentre.ErrNoValue) {
				svc.Logger.Warn("payments: settings do not decode; keeping the previous ones", "item", SettingsItem, "error", err.Error())
			}
			return
		}
		cur.Store(&ps)
		svc.Logger.Info("payments: settings applied", "item", SettingsItem, "version", s.Version, "cohort", s.Cohort(),
			"timeout", ps.Timeout.String(), "fraud_check", ps.FraudCheck)
	}
	v.OnChange(func(s configcentre.Snapshot) {
		mu.Lock()
		defer mu.Unlock()
		changed = true
		apply(s)
	})
	// A change between Config and OnChange is applied by the callback;
	// the value fetched first is applied only if none came since.
	mu.Lock()
	defer mu.Unlock()
	if !changed {
		apply(v.Get())
	}
}

// demoAuthor names the demo's own writes in the configuration centre.
const demoAuthor = "vigil demo"

// configAPI talks to the configuration centre's HTTP API for the demo's
// own writes: the seed and the bad-config gray.
type configAPI struct {
	url    string // e.g. http://localhost:7070
	token  string // VIGIL_BEARER_TOKEN, if any
	client *http.Client
}

func newConfigAPI(url string) *configAPI {
	return &configAPI{url: strings.TrimRight(url, "/"), token: os.Getenv("VIGIL_BEARER_TOKEN"), client: &http.Client{Timeout: 5 * time.Second}}
}

func (c *configAPI) do(ctx context.Context, method, path, contentType, body string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+"/api/v1/config/"+SettingsItem+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	req.Header.Set("X-Vigil-Author", demoAuthor)
	resp, err := c.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, b, err
}

// seed puts FormalSettings unless the item exists; it reports whether it
// did. The put is conditional (cas=0): of two demos starting at once
// against one server, one seeds and the other finds the item.
func (c *configAPI) seed(ctx context.Context) (bool, error) {
	code, body, err := c.do(ctx, http.MethodGet, "", "", "")
	switch {
	case err != nil:
		return false, err
	case code == http.StatusOK:
		return false, nil
	case code != http.StatusNotFound:
		return false, fmt.Errorf("GET %s: HTTP %d: %s", SettingsItem, code, apiError(body))
	}
	code, body, err = c.do(ctx, http.MethodPut, "?cas=0&message=demo+defaults", "application/yaml", FormalSettings)
	if err != nil {
		return false, err
	}
	if code == http.StatusConflict {
		return false, nil
	}
	if code != http.StatusOK {
		return false, fmt.Errorf("PUT %s: HTTP %d: %s", SettingsItem, code, apiError(body))
	}
	return true, nil
}

// configInstance is a service's instance id in the configuration centre,
// e.g. "payments@127.0.0.1:8084".
func configInstance(service, addr string) string { return service + "@" + addr }

// startBadGray starts the bad-config gray on one instance, guarded by
// BadConfigGuard, and returns its version. A gray that an earlier demo run
// left active (it was stopped before the guard ended it) is aborted first:
// at most one gray per item may run. A gray someone else started is left
// alone, and the fault is refused with their name.
func (c *configAPI) startBadGray(ctx context.Context, instance string) (uint64, error) {
	v, code, err := c.postBadGray(ctx, instance)
	if code != http.StatusConflict {
		return v, err
	}
	author, active, herr := c.activeGrayAuthor(ctx)
	switch {
	case herr != nil:
		return 0, errors.Join(err, herr)
	case !active:
		// Ended between the two calls: try once more.
	case author != demoAuthor:
		return 0, fmt.Errorf("%w: a gray by %q is active; abort it or wait for it to end", err, author)
	default:
		code, body, aerr := c.do(ctx, http.MethodPost, "/gray/abort?message=demo+ends+a+gray+left+by+an+earlier+run", "", "")
		if aerr != nil {
			return 0, aerr
		}
		if code != http.StatusOK && code != http.StatusNotFound && code != http.StatusConflict {
			return 0, fmt.Errorf("POST %s/gray/abort: HTTP %d: %s", SettingsItem, code, apiError(body))
		}
	}
	v, _, err = c.postBadGray(ctx, instance)
	return v, err
}

// activeGrayAuthor is the author of the item's active gray, if one is.
func (c *configAPI) activeGrayAuthor(ctx context.Context) (author string, active bool, err error) {
	code, body, err := c.do(ctx, http.MethodGet, "/history", "", "")
	if err != nil {
		return "", false, err
	}
	if code != http.StatusOK {
		return "", false, fmt.Errorf("GET %s/history: HTTP %d: %s", SettingsItem, code, apiError(body))
	}
	var ans struct {
		Data []struct {
			Author     string `json:"author"`
			ActiveGray bool   `json:"active_gray"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return "", false, fmt.Errorf("GET %s/history: %w", SettingsItem, err)
	}
	for _, v := range ans.Data {
		if v.ActiveGray {
			return v.Author, true, nil
		}
	}
	return "", false, nil
}

func (c *configAPI) postBadGray(ctx context.Context, instance string) (uint64, int, error) {
	req, err := json.Marshal(map[string]any{
		"content":      BadSettings,
		"content_type": "yaml",
		"match":        map[string]any{"instances": []string{instance}},
		"guard":        map[string]string{"slo": BadConfigGuard},
	})
	if err != nil {
		return 0, 0, err
	}
	code, body, err := c.do(ctx, http.MethodPost, "/gray?message=demo+fault+bad-config", "application/json", string(req))
	if err != nil {
		return 0, 0, err
	}
	if code != http.StatusOK {
		return 0, code, fmt.Errorf("POST %s/gray: HTTP %d: %s", SettingsItem, code, apiError(body))
	}
	var ans struct {
		Data struct{ Version uint64 }
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return 0, code, fmt.Errorf("POST %s/gray: %w", SettingsItem, err)
	}
	return ans.Data.Version, code, nil
}

// apiError is the reason of an error envelope, else the body.
func apiError(body []byte) string {
	var env struct{ Error string }
	if json.Unmarshal(body, &env) == nil && env.Error != "" {
		return env.Error
	}
	return strings.TrimSpace(string(body))
}
