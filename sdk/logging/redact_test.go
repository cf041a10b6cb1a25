package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strings"
	"testing"
)

func TestRedactKeys(t *testing.T) {
	tests := []struct {
		key  string
		want bool // redacted
	}{
		{"password", true}, {"passwd", true}, {"secret", true}, {"token", true},
		{"api_key", true}, {"apikey", true}, {"authorization", true},
		{"cookie", true}, {"set-cookie", true},
		{"credit_card", true}, {"creditcard", true}, {"card_number", true}, {"cardnumber", true},
		{"cc_number", true}, {"ccnum", true}, {"card_no", true}, {"cvv", true}, {"cvc", true},
		// case and separator variants
		{"PASSWORD", true}, {"Password", true}, {"Authorization", true}, {"Set-Cookie", true},
		{"API-Key", true}, {"apiKey", true}, {"Credit-Card", true}, {"CardNumber", true}, {"card.number", true},
		// prefixed forms
		{"access_token", true}, {"DB_PASSWORD", true}, {"client_secret", true},
		{"Proxy-Authorization", true}, {"x-api-key", true},
		// look-alikes that are not secrets
		{"token_count", false}, {"max_tokens", false}, {"passwordless", false},
		{"user", false}, {"cardholder_city", false}, {"", false},
	}
	for _, tt := range tests {
		t.Run(tt.key, func(t *testing.T) {
			var buf bytes.Buffer
			slog.New(NewHandler(&buf, Options{})).Info("m", tt.key, "value")
			got := decodeOne(t, &buf)[tt.key]
			if redacted := got == Redacted; redacted != tt.want {
				t.Errorf("%q logged as %v, want redacted=%v", tt.key, got, tt.want)
			}
			if !tt.want && got != "value" {
				t.Errorf("%q logged as %v, want value kept", tt.key, got)
			}
		})
	}
}

type secretValuer struct{ pw string }

// LogValue exposes the password on purpose: redaction must see resolved
// values.
func (s secretValuer) LogValue() slog.Value {
	return slog.GroupValue(slog.String("user", "ann"), slog.String("password", s.pw))
}

func TestRedactStructure(t *testing.T) {
	apiKey := regexp.MustCompile(`sk_live_[0-9a-zA-Z]+`)
	tests := []struct {
		name string
		opts Options
		log  func(l *slog.Logger)
		want map[string]any // dotted path -> value
	}{
		{
			name: "nested groups",
			log: func(l *slog.Logger) {
				l.Info("m", slog.Group("req", slog.Group("headers",
					slog.String("Authorization", "Bearer abc"), slog.String("Accept", "json"))))
			},
			want: map[string]any{"req.headers.Authorization": Redacted, "req.headers.Accept": "json"},
		},
		{
			name: "group whose key is sensitive",
			log: func(l *slog.Logger) {
				l.Info("m", slog.Group("token", slog.String("kind", "jwt"), slog.String("raw", "eyJ")))
			},
			want: map[string]any{"token": Redacted},
		},
		{
			name: "WithAttrs at top level",
			log:  func(l *slog.Logger) { l.With("password", "p", "user", "u").Info("m") },
			want: map[string]any{"password": Redacted, "user": "u"},
		},
		{
			name: "WithAttrs inside WithGroup",
			log: func(l *slog.Logger) {
				l.WithGroup("db").With("dsn_password", "p", "host", "h").Info("m", "Secret", "s")
			},
			want: map[string]any{"db.dsn_password": Redacted, "db.host": "h", "db.Secret": Redacted},
		},
		{
			name: "WithGroup named like a secret redacts its contents",
			log:  func(l *slog.Logger) { l.WithGroup("auth_token").With("a", "x").Info("m", "b", 1) },
			want: map[string]any{"auth_token.a": Redacted, "auth_token.b": Redacted},
		},
		{
			name: "LogValuer resolved before redaction",
			log:  func(l *slog.Logger) { l.Info("m", "login", secretValuer{pw: "hunter2"}) },
			want: map[string]any{"login.user": "ann", "login.password": Redacted},
		},
		{
			name: "custom keys",
			opts: Options{RedactKeys: []string{"ssn", "X-Internal-Sig"}},
			log:  func(l *slog.Logger) { l.Info("m", "SSN", "123-45-6789", "x_internal_sig", "abc", "name", "n") },
			want: map[string]any{"SSN": Redacted, "x_internal_sig": Redacted, "name": "n"},
		},
		{
			name: "custom patterns on strings and errors",
			opts: Options{RedactPatterns: []*regexp.Regexp{apiKey}},
			log: func(l *slog.Logger) {
				l.Info("m", "note", "key is sk_live_abc123", "err", errors.New("auth failed for sk_live_x9"), "other", "fine")
			},
			want: map[string]any{"note": Redacted, "err": Redacted, "other": "fine"},
		},
		{
			name: "patterns are not applied to the message",
			opts: Options{RedactPatterns: []*regexp.Regexp{apiKey}},
			log:  func(l *slog.Logger) { l.Info("sk_live_abc is the template") },
			want: map[string]any{"msg": "sk_live_abc is the template"},
		},
		{
			name: "error values without secrets keep their text",
			log:  func(l *slog.Logger) { l.Info("m", "err", fmt.Errorf("open: %w", errors.New("denied"))) },
			want: map[string]any{"err": "open: denied"},
		},
		{
			name: "card numbers",
			log: func(l *slog.Logger) {
				l.Info("m",
					"visa", "4111111111111111",
					"spaced", "4111 1111 1111 1111",
					"dashed", "5500-0055-5555-5559",
					"amex", "378282246310005",
					"in_text", "charged card 6011111111111117 ok",
					"order_id", "2024061500001234", // 16 digits, fails Luhn
					"nanos", "1700000000000000004", // passes Luhn, no issuer digit
					"long_run", "41111111111111110000", // 20 digits: not a card
					"phone", "+1 415 555 0100",
					"int_card", 4111111111111111, // numbers are not scanned
				)
			},
			want: map[string]any{
				"visa": Redacted, "spaced": Redacted, "dashed": Redacted, "amex": Redacted, "in_text": Redacted,
				"order_id": "2024061500001234", "nanos": "1700000000000000004",
				"long_run": "41111111111111110000", "phone": "+1 415 555 0100", "int_card": float64(4111111111111111),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.log(slog.New(NewHandler(&buf, tt.opts)))
			rec := decodeOne(t, &buf)
			for path, want := range tt.want {
				got, ok := lookup(rec, path)
				if !ok || got != want {
					t.Errorf("%s = %v (present %v), want %v\nrecord: %s", path, got, ok, want, buf.String())
				}
			}
		})
	}
}

func TestRedactDoesNotMutateCallerAttrs(t *testing.T) {
	group := slog.Group("g", slog.String("password", "p"))
	attrs := []slog.Attr{slog.String("token", "t"), group}
	var buf bytes.Buffer
	h := NewHandler(&buf, Options{})
	h.WithAttrs(attrs)
	if attrs[0].Value.String() != "t" || attrs[1].Value.Group()[0].Value.String() != "p" {
		t.Errorf("caller's attributes were modified: %v", attrs)
	}
}

func TestContainsCardNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"4111111111111111", true},
		{"4111 1111 1111 1111", true},
		{"4111-1111-1111-1111", true},
		{"card:4000056655665556;", true},
		{"3530111333300000", true},
		{"4111111111111112", false},        // Luhn fails
		{"4111  1111 1111 1111", false},    // double space splits the run
		{"411111111111", false},            // 12 digits
		{"1700000000000000004", false},     // issuer digit 1
		{"0000000000000000", false},        // issuer digit 0
		{"4111111111111111-", true},        // trailing separator ends the run
		{"x4111111111111111y", true},       // letters are boundaries
		{"12345678901234567890123", false}, // too long
		{"", false},
	}
	for _, tt := range tests {
		if got := containsCardNumber(tt.in); got != tt.want {
			t.Errorf("containsCardNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestSensitiveKeyFastPathAgrees checks the back-to-front, early-rejecting
// key match against plain normalisation of the whole key, including with a
// configured key too long for the fast path's buffer.
func TestSensitiveKeyFastPathAgrees(t *testing.T) {
	long := strings.Repeat("x", 70) + "_secret_suffix"
	keys := []string{
		"", "-", "_._", "password", "PASSWORD", "db_password", "pass-word", "passwordless",
		"token", "token_count", "max_tokens", "Access-Token", "x-api-key", "apiKey", "API_KEY ",
		"set-cookie", "Cookie", "cvv", "CVC", "card.no", "cc_num", "status", "path", "user_id",
		"order_id", "region", "customer", "err", "a" + strings.Repeat("_", 100) + "token",
		strings.Repeat("y", 80) + "password", long, "prefix" + long, long[1:], "suffix",
	}
	for _, extra := range [][]string{nil, {"ssn", long}} {
		r := newRedactor(extra, nil)
		for _, k := range keys {
			if fast, slow := r.sensitiveKey(k), r.sensitiveKeySlow(k); fast != slow {
				t.Errorf("extra %d keys: sensitiveKey(%q) = %v, full normalisation says %v", len(extra), k, fast, slow)
			}
		}
	}
	r := newRedactor(nil, nil)
	for k, want := range map[string]bool{"db_password": true, "token_count": false, "status": false, "X-Api-Key": true} {
		if got := r.sensitiveKey(k); got != want {
			t.Errorf("sensitiveKey(%q) = %v, want %v", k, got, want)
		}
	}
}
