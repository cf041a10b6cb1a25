package limits

import "testing"

func TestReportMessage(t *testing.T) {
	tests := []struct {
		name  string
		build func(r *Report)
		want  string
	}{
		{name: "empty", build: func(*Report) {}, want: ""},
		{
			name: "rejections sorted by count then name",
			build: func(r *Report) {
				r.Reject(ReasonTimestampTooOld, 1)
				r.Reject(ReasonInvalidTraceID, 2)
				r.Reject(ReasonEndBeforeStart, 1)
			},
			want: "4 spans rejected: 2 invalid_trace_id, 1 end_before_start, 1 timestamp_too_old",
		},
		{
			name:  "only alterations",
			build: func(r *Report) { r.Alter(ReasonInvalidUTF8, 3) },
			want:  "altered: 3 invalid_utf8",
		},
		{
			name: "zero counts ignored",
			build: func(r *Report) {
				r.Reject(ReasonInvalidSpanID, 0)
				r.Alter(ReasonInvalidUTF8, 0)
			},
			want: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Report{Item: "spans"}
			tt.build(&r)
			if got := r.Message(); got != tt.want {
				t.Errorf("Message() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestReportMerge(t *testing.T) {
	var a Report
	a.Reject(ReasonInvalidTraceID, 1)
	b := Report{Item: "spans"}
	b.Reject(ReasonInvalidTraceID, 2)
	b.Alter(ReasonValueTruncated, 1)
	a.Merge(b)
	if a.Rejected != 3 || a.Dropped[ReasonInvalidTraceID] != 3 || a.Altered[ReasonValueTruncated] != 1 || a.Item != "spans" {
		t.Errorf("merged = %+v", a)
	}
}
