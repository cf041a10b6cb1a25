// Package apitime reads the times vigil's own query APIs accept, so every
// endpoint takes the same forms.
package apitime

import (
	"fmt"
	"math/big"
	"strings"
	"time"
)

// millisThreshold separates unix seconds from unix milliseconds: no useful
// seconds value exceeds it (it is the year 33658), and every millisecond
// value after 2001-09-09 does.
const millisThreshold = 1e12

// Parse accepts RFC 3339 (with or without fractional seconds), unix
// seconds with an optional fraction, or unix milliseconds: a number above
// 1e12 is read as milliseconds. Numbers are converted exactly (no float
// rounding), so a millisecond value keeps its milliseconds.
func Parse(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	bad := fmt.Errorf("%q is neither an RFC 3339 time nor a unix timestamp in seconds or milliseconds", s)
	if !isDecimal(s) {
		return time.Time{}, bad
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return time.Time{}, bad
	}
	unit := big.NewRat(int64(time.Second), 1)
	if r.Cmp(big.NewRat(millisThreshold, 1)) > 0 {
		unit = big.NewRat(int64(time.Millisecond), 1)
	}
	r.Mul(r, unit)
	nanos := new(big.Int).Quo(r.Num(), r.Denom())
	if !nanos.IsInt64() {
		// No stored record can lie outside what int64 nanoseconds hold
		// (years 1678 to 2262).
		return time.Time{}, fmt.Errorf("%q is out of range", s)
	}
	return time.Unix(0, nanos.Int64()).UTC(), nil
}

// isDecimal reports whether s is a plain decimal number, optionally signed,
// with an optional fraction and exponent. It keeps big.Rat's other accepted
// forms (fractions like 1/3, hex) out of the API.
func isDecimal(s string) bool {
	digits := func(s string) (rest string, n int) {
		for n < len(s) && s[n] >= '0' && s[n] <= '9' {
			n++
		}
		return s[n:], n
	}
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	s, intDigits := digits(s)
	fracDigits := 0
	if strings.HasPrefix(s, ".") {
		s, fracDigits = digits(s[1:])
	}
	if intDigits+fracDigits == 0 {
		return false
	}
	if len(s) > 0 && (s[0] == 'e' || s[0] == 'E') {
		s = s[1:]
		if len(s) > 0 && (s[0] == '-' || s[0] == '+') {
			s = s[1:]
		}
		var expDigits int
		if s, expDigits = digits(s); expDigits == 0 || expDigits > 4 {
			return false
		}
	}
	return s == ""
}
