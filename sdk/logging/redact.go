package logging

import (
	"bytes"
	"log/slog"
	"regexp"
)

// Redacted is the string that replaces the value of every redacted attribute.
const Redacted = "[REDACTED]"

// DefaultRedactKeys returns the attribute keys that are always redacted. It
// returns a fresh slice on every call so callers may modify it.
//
// Keys are compared after normalisation: lower-cased, with '-', '_', '.' and
// ' ' removed, so "API-Key", "api_key" and "apiKey" are the same key. A key
// matches when its normalised form ends with a listed key, which catches the
// common prefixed forms ("access_token", "db_password", "client_secret",
// "proxy-authorization") without matching keys that merely start with one
// ("token_count" is kept).
func DefaultRedactKeys() []string {
	return []string{
		"password", "passwd", "secret", "token",
		"api_key", "apikey", "authorization",
		"cookie", "set-cookie",
		"credit_card", "creditcard", "card_number", "cardnumber",
		"cc_number", "ccnum", "card_no", "cvv", "cvc",
	}
}

// redactor decides which attributes are sensitive. It is immutable after
// construction and therefore safe for concurrent use.
type redactor struct {
	// byLast holds the normalised, de-duplicated keys indexed by their last
	// byte, so that the usual key ("status", "path") is rejected after
	// looking at one byte instead of being compared with every key.
	byLast   [256][][]byte
	maxLen   int // length of the longest normalised key
	patterns []*regexp.Regexp
}

func newRedactor(extraKeys []string, patterns []*regexp.Regexp) *redactor {
	r := &redactor{patterns: patterns}
	seen := make(map[string]bool)
	for _, k := range append(DefaultRedactKeys(), extraKeys...) {
		n := normaliseKey(nil, k)
		if len(n) == 0 || seen[string(n)] {
			continue
		}
		seen[string(n)] = true
		last := n[len(n)-1]
		r.byLast[last] = append(r.byLast[last], n)
		r.maxLen = max(r.maxLen, len(n))
	}
	return r
}

// normaliseKey appends the normalised form of key to dst. ASCII-only folding
// is deliberate: attribute keys are identifiers, and avoiding unicode tables
// keeps the per-attribute cost to a byte loop.
func normaliseKey(dst []byte, key string) []byte {
	for i := range len(key) {
		c := key[i]
		switch {
		case c == '-' || c == '_' || c == '.' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// sensitiveKey reports whether key names a secret. Matching is by suffix,
// so only the last maxLen normalised bytes of key matter; they are
// normalised back to front into a stack buffer, stopping early when the
// last byte cannot end any sensitive key.
func (r *redactor) sensitiveKey(key string) bool {
	var buf [64]byte
	if r.maxLen > len(buf) {
		return r.sensitiveKeySlow(key)
	}
	n := 0 // normalised bytes, stored at the end of buf
	for i := len(key) - 1; i >= 0 && n < r.maxLen; i-- {
		c := key[i]
		switch {
		case c == '-' || c == '_' || c == '.' || c == ' ':
			continue
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if n == 0 && len(r.byLast[c]) == 0 {
			return false
		}
		n++
		buf[len(buf)-n] = c
	}
	if n == 0 {
		return false
	}
	tail := buf[len(buf)-n:]
	for _, k := range r.byLast[tail[n-1]] {
		if bytes.HasSuffix(tail, k) {
			return true
		}
	}
	return false
}

// sensitiveKeySlow is sensitiveKey for configurations with keys too long
// for its stack buffer.
func (r *redactor) sensitiveKeySlow(key string) bool {
	n := normaliseKey(nil, key)
	if len(n) == 0 {
		return false
	}
	for _, k := range r.byLast[n[len(n)-1]] {
		if bytes.HasSuffix(n, k) {
			return true
		}
	}
	return false
}

// sensitiveValue reports whether a string value must be hidden: it matches a
// configured pattern or contains a payment card number.
func (r *redactor) sensitiveValue(s string) bool {
	if containsCardNumber(s) {
		return true
	}
	for _, p := range r.patterns {
		if p.MatchString(s) {
			return true
		}
	}
	return false
}

// attr returns a redacted copy of a and whether anything changed. When all is
// set (the attribute lives under a group whose name is itself sensitive) every
// value is replaced. LogValuer values are resolved first so that what a type
// chooses to log is what gets checked.
func (r *redactor) attr(a slog.Attr, all bool) (slog.Attr, bool) {
	v := a.Value
	resolved := v.Kind() == slog.KindLogValuer
	if resolved {
		v = v.Resolve()
	}
	if all || r.sensitiveKey(a.Key) {
		if v.Kind() == slog.KindGroup && len(v.Group()) == 0 {
			// Empty groups are dropped by handlers; keep them empty rather
			// than conjuring an attribute that was never going to be printed.
			return slog.Attr{Key: a.Key, Value: v}, resolved
		}
		return slog.String(a.Key, Redacted), true
	}
	switch v.Kind() {
	case slog.KindString:
		if r.sensitiveValue(v.String()) {
			return slog.String(a.Key, Redacted), true
		}
	case slog.KindAny:
		// Error texts routinely embed request data (URLs, DSNs, payloads).
		if err, ok := v.Any().(error); ok && err != nil {
			if text, ok := errorText(err); ok && r.sensitiveValue(text) {
				return slog.String(a.Key, Redacted), true
			}
		}
	case slog.KindGroup:
		if members, changed := r.attrs(v.Group(), false); changed {
			return slog.Attr{Key: a.Key, Value: slog.GroupValue(members...)}, true
		}
	}
	return slog.Attr{Key: a.Key, Value: v}, resolved
}

// errorText returns err.Error(), or false when that panics, typically on a
// nil pointer receiver; such an error has no text to leak, and the encoder
// writes the same placeholder slog would ("<nil>" or the panic).
func errorText(err error) (text string, ok bool) {
	defer func() {
		if recover() != nil {
			text, ok = "", false
		}
	}()
	return err.Error(), true
}

// attrs redacts a slice copy-on-write: the input is never modified (it may be
// shared with the caller) and is returned as-is when nothing changed.
func (r *redactor) attrs(in []slog.Attr, all bool) ([]slog.Attr, bool) {
	var out []slog.Attr
	for i, a := range in {
		ra, changed := r.attr(a, all)
		if changed && out == nil {
			out = make([]slog.Attr, len(in))
			copy(out, in[:i])
		}
		if out != nil {
			out[i] = ra
		}
	}
	if out == nil {
		return in, false
	}
	return out, true
}

// containsCardNumber reports whether s contains a payment card number: a run
// of 13–19 digits, optionally split by single spaces or dashes, whose first
// digit is 2–6 (the issuer ranges of Visa, Mastercard, Amex, Discover, JCB,
// Diners, UnionPay and Maestro) and which passes the Luhn check.
//
// The issuer-digit rule exists because the Luhn check alone accepts one in ten
// random numbers; it keeps nanosecond Unix timestamps (which start with 1)
// from being redacted. Runs are maximal, so a card glued to other digits by a
// separator ("qty 3 4111…") is not found: detection is a safety net, not a
// substitute for not logging card data.
func containsCardNumber(s string) bool {
	if len(s) < 13 {
		return false
	}
	var digits [19]byte
	n := 0 // digits in the current run, may exceed len(digits)
	for i := 0; i <= len(s); i++ {
		if i < len(s) {
			c := s[i]
			if isDigit(c) {
				if n < len(digits) {
					digits[n] = c - '0'
				}
				n++
				continue
			}
			if (c == ' ' || c == '-') && n > 0 && isDigit(s[i-1]) && i+1 < len(s) && isDigit(s[i+1]) {
				continue
			}
		}
		if n >= 13 && n <= 19 && digits[0] >= 2 && digits[0] <= 6 && luhnValid(digits[:n]) {
			return true
		}
		n = 0
	}
	return false
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// luhnValid implements the Luhn mod-10 check over digit values.
func luhnValid(d []byte) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		v := int(d[i])
		if double {
			v *= 2
			if v > 9 {
				v -= 9
			}
		}
		sum += v
		double = !double
	}
	return sum%10 == 0
}
