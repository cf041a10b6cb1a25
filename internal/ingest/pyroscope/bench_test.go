package pyroscope

import (
	"bytes"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/vigil-observability/vigil/internal/storage"
	"github.com/vigil-observability/vigil/internal/storage/embedded"
	"github.com/vigil-observability/vigil/internal/storage/storagetest"
)

// benchProfile is a 10 s CPU profile as pyroscope-go uploads it: 400
// samples over 200 stacks of 20 frames from 300 functions.
func benchProfile(b *testing.B) []byte {
	var samples []storagetest.ProfileSample
	for i := range 400 {
		st := i % 200
		stack := make([]string, 20)
		for j := range stack {
			stack[j] = fmt.Sprintf("github.com/acme/shop/internal/pkg%d.(*Handler).Method%d", (st*7+j*13)%40, (st*31+j)%300)
		}
		s := storagetest.ProfileSample{Stack: stack, Values: []int64{1, 10_000_000}}
		if i%10 == 0 {
			s.SpanID = fmt.Sprintf("%016x", i)
		}
		samples = append(samples, s)
	}
	return storagetest.PprofBytes(b, []string{"samples", "cpu"}, samples...)
}

// BenchmarkIngestCPUProfile is one pyroscope-go upload received, checked
// and stored durably in the embedded store: its inverse is the profiles
// one core ingests per second.
func BenchmarkIngestCPUProfile(b *testing.B) {
	st, err := embedded.OpenProfileStore(b.Context(), embedded.ProfileOptions{Dir: b.TempDir()})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	h := NewHandler(Options{Profiles: st})
	prof := benchProfile(b)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	fw, _ := w.CreateFormFile("profile", "profile.pprof")
	_, _ = fw.Write(prof)
	_ = w.Close()
	ct := w.FormDataContentType()
	b.SetBytes(int64(body.Len()))
	b.ReportAllocs()
	now := time.Now()
	b.ResetTimer()
	for i := range b.N {
		end := now.Add(time.Duration(i-b.N) * 10 * time.Second)
		q := url.Values{"name": {"shop{env=prod}"}, "from": {fmt.Sprint(end.Add(-10 * time.Second).Unix())}, "until": {fmt.Sprint(end.Unix())}}
		req := httptest.NewRequest(http.MethodPost, Path+"?"+q.Encode(), bytes.NewReader(body.Bytes()))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("%d %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	_ = storage.ProfileCPU
}
