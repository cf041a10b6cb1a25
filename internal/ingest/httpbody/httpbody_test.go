package httpbody

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

// compressor builds an encoder writing to w for one Content-Encoding.
type compressor func(t testing.TB, w io.Writer) io.WriteCloser

var compressors = map[string]compressor{
	"identity": func(_ testing.TB, w io.Writer) io.WriteCloser { return nopCloser{w} },
	"gzip": func(t testing.TB, w io.Writer) io.WriteCloser {
		zw, err := gzip.NewWriterLevel(w, gzip.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		return zw
	},
	"deflate": func(t testing.TB, w io.Writer) io.WriteCloser {
		zw, err := zlib.NewWriterLevel(w, zlib.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		return zw
	},
	"zstd": func(t testing.TB, w io.Writer) io.WriteCloser {
		zw, err := zstd.NewWriter(w)
		if err != nil {
			t.Fatal(err)
		}
		return zw
	},
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

func compress(t testing.TB, enc string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := compressors[enc](t, &buf)
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func rawDeflate(t *testing.T, data []byte) []byte {
	var buf bytes.Buffer
	w, err := flate.NewWriter(&buf, flate.BestSpeed)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

func TestRead(t *testing.T) {
	const limit = 1000
	payload := bytes.Repeat([]byte("otlp-"), limit/5) // exactly the limit
	over := append(bytes.Clone(payload), 'x')
	tests := []struct {
		name     string
		encoding string
		body     []byte
		want     []byte
		wantErr  error
		anyErr   bool
	}{
		{name: "no encoding", encoding: "", body: payload, want: payload},
		{name: "identity", encoding: "identity", body: payload, want: payload},
		{name: "gzip", encoding: "gzip", body: compress(t, "gzip", payload), want: payload},
		{name: "x-gzip, odd case and spaces", encoding: " X-GZip ", body: compress(t, "gzip", payload), want: payload},
		{name: "deflate as zlib", encoding: "deflate", body: compress(t, "deflate", payload), want: payload},
		{name: "deflate raw", encoding: "deflate", body: rawDeflate(t, payload), want: payload},
		{name: "zstd", encoding: "zstd", body: compress(t, "zstd", payload), want: payload},
		{name: "empty gzip body", encoding: "gzip", body: compress(t, "gzip", nil), want: []byte{}},
		{name: "empty identity body", encoding: "", body: nil, want: []byte{}},
		{name: "identity over limit", encoding: "", body: over, wantErr: ErrTooLarge},
		{name: "gzip over limit", encoding: "gzip", body: compress(t, "gzip", over), wantErr: ErrTooLarge},
		{name: "deflate over limit", encoding: "deflate", body: compress(t, "deflate", over), wantErr: ErrTooLarge},
		{name: "zstd over limit", encoding: "zstd", body: compress(t, "zstd", over), wantErr: ErrTooLarge},
		{name: "unsupported", encoding: "br", body: payload, wantErr: ErrUnsupportedEncoding},
		{name: "stacked encodings unsupported", encoding: "gzip, zstd", body: payload, wantErr: ErrUnsupportedEncoding},
		{name: "corrupt gzip", encoding: "gzip", body: []byte("definitely not gzip"), anyErr: true},
		{name: "truncated gzip", encoding: "gzip", body: compress(t, "gzip", payload)[:20], anyErr: true},
		{name: "corrupt zstd", encoding: "zstd", body: []byte("not zstd either"), anyErr: true},
		{name: "short deflate", encoding: "deflate", body: []byte{1}, anyErr: true},
	}
	r := NewReader(limit)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := r.Read(bytes.NewReader(tt.body), tt.encoding)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			case tt.anyErr:
				if err == nil {
					t.Fatal("corrupt body was accepted")
				}
				if errors.Is(err, ErrTooLarge) || errors.Is(err, ErrUnsupportedEncoding) {
					t.Fatalf("corrupt body reported as %v", err)
				}
				return
			case err != nil:
				t.Fatalf("Read: %v", err)
			}
			if !bytes.Equal(body.Bytes(), tt.want) {
				t.Errorf("got %d bytes, want %d", len(body.Bytes()), len(tt.want))
			}
			body.Release()
			body.Release() // idempotent
			if body.Bytes() != nil {
				t.Error("Bytes after Release should be nil")
			}
		})
	}
}

func TestReadRawStreamIsCapped(t *testing.T) {
	// A compressed stream much larger than the limit that inflates to
	// almost nothing: gzip members of empty input, back to back.
	empty := compress(t, "gzip", nil)
	stream := bytes.Repeat(empty, 200)
	r := NewReader(1000)
	if _, err := r.Read(bytes.NewReader(stream), "gzip"); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v, want ErrTooLarge", err)
	}
}

func TestReadRequest(t *testing.T) {
	r := NewReader(10)
	tests := []struct {
		name    string
		body    string
		length  int64 // Content-Length to declare, -1 for unknown
		wantErr error
	}{
		{name: "fits", body: "0123456789", length: 10},
		{name: "declared too large", body: "0123456789", length: 11, wantErr: ErrTooLarge},
		{name: "unknown length, too large", body: "0123456789a", length: -1, wantErr: ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/", strings.NewReader(tt.body))
			req.ContentLength = tt.length
			body, err := r.ReadRequest(req)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(body.Bytes()) != tt.body {
				t.Errorf("body = %q", body.Bytes())
			}
		})
	}
	req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(compress(t, "zstd", []byte("hello"))))
	req.Header.Set("Content-Encoding", "zstd")
	body, err := r.ReadRequest(req)
	if err != nil || string(body.Bytes()) != "hello" {
		t.Fatalf("zstd request: %q, %v", body.Bytes(), err)
	}
}

// bomb streams size zeros through the encoder; only the compressed bytes
// are kept (about 1 MiB for 1 GiB of zeros with gzip).
func bomb(t *testing.T, enc string, size int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := compressors[enc](t, &buf)
	zeros := make([]byte, 1<<20)
	for written := 0; written < size; written += len(zeros) {
		if _, err := w.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestCompressionBombIsRefusedWithLittleMemory(t *testing.T) {
	const (
		gib   = 1 << 30
		limit = 4 << 20
		// Generous: the limit, buffer doubling and decoder state. Inflating
		// the bomb would allocate at least 1 GiB.
		maxAlloc = 64 << 20
	)
	for _, enc := range []string{"gzip", "zstd", "deflate"} {
		t.Run(enc, func(t *testing.T) {
			compressed := bomb(t, enc, gib)
			if len(compressed) > limit {
				t.Fatalf("bomb is %d bytes compressed; the test needs it under the limit", len(compressed))
			}
			r := NewReader(limit)
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := r.Read(bytes.NewReader(compressed), enc)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("err = %v, want ErrTooLarge", err)
			}
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > maxAlloc {
				t.Errorf("reading the bomb allocated %d MiB, want under %d MiB", alloc>>20, maxAlloc>>20)
			}
		})
	}
}

func TestReaderReusesPooledDecoders(t *testing.T) {
	// Sequential reads through the same Reader must not leak state from one
	// body into the next, whatever the pool hands out.
	r := NewReader(1 << 20)
	for i := range 20 {
		enc := []string{"gzip", "zstd", "deflate", ""}[i%4]
		want := bytes.Repeat([]byte{byte('a' + i)}, 100+i*37)
		data := want
		if enc != "" {
			data = compress(t, enc, want)
		}
		body, err := r.Read(bytes.NewReader(data), enc)
		if err != nil {
			t.Fatalf("read %d (%s): %v", i, enc, err)
		}
		if !bytes.Equal(body.Bytes(), want) {
			t.Fatalf("read %d (%s): wrong content", i, enc)
		}
		body.Release()
	}
}

func BenchmarkReadGzip(b *testing.B) {
	payload := bytes.Repeat([]byte("some otlp-ish payload with attributes "), 10000)
	data := compress(b, "gzip", payload)
	r := NewReader(64 << 20)
	b.ReportAllocs()
	b.SetBytes(int64(len(payload)))
	for b.Loop() {
		body, err := r.Read(bytes.NewReader(data), "gzip")
		if err != nil {
			b.Fatal(err)
		}
		body.Release()
	}
}
