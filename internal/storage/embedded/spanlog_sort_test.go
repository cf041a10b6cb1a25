package embedded

import (
	"slices"
	"testing"
)

func TestSortLogRows(t *testing.T) {
	type k struct{ day, observed, ts int64 }
	tests := []struct {
		name string
		in   []k
		want []k
	}{
		{"empty", nil, nil},
		{"sorted", []k{{1, 1, 1}, {1, 1, 2}, {1, 2, 0}}, []k{{1, 1, 1}, {1, 1, 2}, {1, 2, 0}}},
		{"day first", []k{{2, 0, 0}, {1, 9, 9}}, []k{{1, 9, 9}, {2, 0, 0}}},
		{"observed before time", []k{{1, 2, 1}, {1, 1, 5}, {1, 1, 3}}, []k{{1, 1, 3}, {1, 1, 5}, {1, 2, 1}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rows := make([]logRow, len(tt.in))
			for i, r := range tt.in {
				// The body offsets tell each row apart, to see rows move whole.
				rows[i] = logRow{day: r.day, observed: r.observed, ts: r.ts, body: [2]int32{int32(i), int32(i)}}
			}
			got := sortLogRows(rows)
			var keys []k
			for _, r := range got {
				keys = append(keys, k{r.day, r.observed, r.ts})
				if in := tt.in[r.body[0]]; in != (k{r.day, r.observed, r.ts}) {
					t.Errorf("row %v came with the fields of %v", in, r)
				}
			}
			if !slices.Equal(keys, tt.want) {
				t.Errorf("sortLogRows = %v, want %v", keys, tt.want)
			}
		})
	}
}
