package apitime

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	tests := []struct {
		in   string
		want time.Time
		err  bool
	}{
		{in: "2024-01-15T10:00:00Z", want: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)},
		{in: "2024-01-15T10:00:00.5+02:00", want: time.Date(2024, 1, 15, 8, 0, 0, 5e8, time.UTC)},
		{in: "1705312800", want: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)},
		{in: "1705312800.123456789", want: time.Date(2024, 1, 15, 10, 0, 0, 123456789, time.UTC)},
		{in: "1705312800123", want: time.Date(2024, 1, 15, 10, 0, 0, 123e6, time.UTC)},
		{in: "1705312800123.5", want: time.Date(2024, 1, 15, 10, 0, 0, 123500e3, time.UTC)},
		{in: "1.7053128e9", want: time.Date(2024, 1, 15, 10, 0, 0, 0, time.UTC)},
		{in: "1000000000001", want: time.UnixMilli(1e12 + 1).UTC()},
		{in: "1000000000000", err: true}, // exactly 1e12 is still seconds: out of range
		{in: "0", want: time.Unix(0, 0).UTC()},
		{in: "-1.5", want: time.Unix(-2, 5e8).UTC()},
		{in: ".5", want: time.Unix(0, 5e8).UTC()},
		{in: "1e30", err: true},
		{in: "", err: true},
		{in: "1/3", err: true},
		{in: "0x10", err: true},
		{in: "NaN", err: true},
		{in: "Inf", err: true},
		{in: "1e", err: true},
		{in: "1e99999", err: true},
		{in: "12:00", err: true},
		{in: "2024-01-15", err: true},
		{in: " 1", err: true},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in)
		if (err != nil) != tt.err || !got.Equal(tt.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
