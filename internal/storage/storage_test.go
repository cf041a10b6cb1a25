package storage

import (
	"testing"
	"time"
)

func TestREDCovered(t *testing.T) {
	end := time.Unix(1_700_000_000, 0)
	hour := REDQuery{Start: end.Add(-time.Hour), End: end}
	row := func(first time.Time) REDRow { return REDRow{Calls: 1, First: first} }
	tests := []struct {
		name string
		q    REDQuery
		rows []REDRow
		want time.Duration
	}{
		{"no rows: the whole range", hour, nil, time.Hour},
		{"data from 6 minutes before the end", hour, []REDRow{row(end.Add(-6 * time.Minute))}, 6 * time.Minute},
		{"the earliest row counts", hour, []REDRow{row(end.Add(-time.Minute)), row(end.Add(-6 * time.Minute))}, 6 * time.Minute},
		{"data before the range: the range", hour, []REDRow{row(end.Add(-2 * time.Hour))}, time.Hour},
		{"a first span an instant before the end: ten seconds", hour, []REDRow{row(end.Add(-time.Millisecond))}, 10 * time.Second},
		{"a range shorter than ten seconds: the range", REDQuery{Start: end.Add(-3 * time.Second), End: end}, []REDRow{row(end.Add(-time.Millisecond))}, 3 * time.Second},
		{"rows without First: the range", hour, []REDRow{{Calls: 1}}, time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := REDCovered(tt.q, tt.rows); got != tt.want {
				t.Errorf("REDCovered = %v, want %v", got, tt.want)
			}
		})
	}
}
