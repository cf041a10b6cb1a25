package storage

import (
	"testing"
	"time"
)

func TestDurationQuantile(t *testing.T) {
	tests := []struct {
		name string
		v    []int64
		q    float64
		want time.Duration
	}{
		{"empty", nil, 0.99, 0},
		{"one value", []int64{7}, 0.5, 7},
		{"median of even count interpolates", []int64{40, 10, 30, 20}, 0.5, 25},
		{"p99 of 1..100", seq(100), 0.99, 99}, // pos 98.01 between 99 and 100
		{"rounds to the nanosecond", []int64{0, 1}, 0.5, 1},
		{"max", []int64{3, 9, 1}, 1, 9},
		{"min", []int64{3, 9, 1}, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DurationQuantile(tt.v, tt.q); got != tt.want {
				t.Errorf("DurationQuantile(%v, %v) = %d, want %d", tt.v, tt.q, got, tt.want)
			}
		})
	}
}

func seq(n int) []int64 {
	v := make([]int64, n)
	for i := range v {
		v[i] = int64(i + 1)
	}
	return v
}
