// Package httpbody reads HTTP request bodies that may be compressed, without
// ever holding more than a configured number of decompressed bytes: the
// limit is enforced while inflating, so a small compression bomb fails fast
// instead of filling memory.
package httpbody

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
)

var (
	// ErrTooLarge means the body, compressed or decompressed, is larger than
	// the limit. Receivers answer it with 413 / RESOURCE_EXHAUSTED.
	ErrTooLarge = errors.New("httpbody: request body too large")
	// ErrUnsupportedEncoding means the Content-Encoding is not one this
	// package decodes. Receivers answer it with 415.
	ErrUnsupportedEncoding = errors.New("httpbody: unsupported content encoding")
)

// maxPooledBuffer keeps an occasional huge body from pinning its buffer in
// the pool for the life of the process.
const maxPooledBuffer = 4 << 20

// Reader reads bodies of at most Limit decompressed bytes. It pools the
// buffers and decompressors it uses, so one Reader should be shared by all
// requests of a receiver; it is safe for concurrent use.
type Reader struct {
	limit int64
	bufs  sync.Pool // *bytes.Buffer
	gzips sync.Pool // *gzip.Reader
	zstds sync.Pool // *zstd.Decoder
}

// NewReader returns a Reader enforcing limit bytes (which must be positive)
// on both the raw and the decompressed body.
func NewReader(limit int64) *Reader {
	return &Reader{limit: max(limit, 1)}
}

// Limit returns the maximum number of decompressed bytes a body may hold.
func (r *Reader) Limit() int64 { return r.limit }

// Body is a request body read into memory. Call Release once its bytes are
// no longer needed (after decoding) to return its buffer for reuse.
type Body struct {
	buf *bytes.Buffer
	r   *Reader
}

// Bytes returns the decompressed body. The slice is only valid until Release.
func (b *Body) Bytes() []byte {
	if b == nil || b.buf == nil {
		return nil
	}
	return b.buf.Bytes()
}

// Release returns the body's memory to its Reader. Bytes must not be used
// afterwards. It is safe to call more than once and on nil.
func (b *Body) Release() {
	if b == nil || b.buf == nil {
		return
	}
	b.r.putBuffer(b.buf)
	b.buf = nil
}

// ReadRequest reads req.Body according to its Content-Encoding header. A
// declared Content-Length that cannot fit (the limit, plus a little slack
// for compressed bodies) is refused before reading.
func (r *Reader) ReadRequest(req *http.Request) (*Body, error) {
	return r.ReadRequestThrough(req, nil)
}

// ReadRequestThrough is ReadRequest with the decompressed stream read
// through wrap (nil: as is), for example to pay for memory before it is
// taken. An error from wrap's reader is returned wrapped.
func (r *Reader) ReadRequestThrough(req *http.Request, wrap func(io.Reader) io.Reader) (*Body, error) {
	enc := req.Header.Get("Content-Encoding")
	if req.ContentLength >= r.rawCap(normalize(enc)) {
		return nil, ErrTooLarge
	}
	return r.read(req.Body, enc, wrap)
}

// Read reads all of src, decoded according to contentEncoding ("",
// "identity", "gzip", "x-gzip", "deflate" (zlib or raw), or "zstd"). It
// returns ErrTooLarge as soon as more than the limit of raw or decompressed
// bytes shows up, ErrUnsupportedEncoding for any other encoding, and a
// wrapped decoder error for a corrupt stream.
func (r *Reader) Read(src io.Reader, contentEncoding string) (*Body, error) {
	return r.read(src, contentEncoding, nil)
}

func (r *Reader) read(src io.Reader, contentEncoding string, wrap func(io.Reader) io.Reader) (*Body, error) {
	enc := normalize(contentEncoding)
	// The raw stream is capped too: a stream of empty compressed blocks
	// would otherwise be read forever without producing output.
	raw := &io.LimitedReader{R: src, N: r.rawCap(enc)}

	var (
		dec     io.Reader
		release func()
		err     error
	)
	switch enc {
	case "":
		dec = raw
	case "gzip", "x-gzip":
		dec, release, err = r.gzipReader(raw)
	case "deflate":
		dec, err = deflateReader(raw)
	case "zstd":
		dec, release, err = r.zstdReader(raw)
	default:
		return nil, fmt.Errorf("%w: %q", ErrUnsupportedEncoding, contentEncoding)
	}
	if release != nil {
		defer release()
	}
	if err != nil {
		if raw.N <= 0 || isSizeError(err) {
			return nil, ErrTooLarge
		}
		return nil, fmt.Errorf("httpbody: reading %s body: %w", enc, err)
	}

	dec = io.LimitReader(dec, r.limit+1)
	if wrap != nil {
		dec = wrap(dec)
	}
	buf := r.getBuffer()
	_, err = buf.ReadFrom(dec)
	switch {
	case int64(buf.Len()) > r.limit || raw.N <= 0 || isSizeError(err):
		r.putBuffer(buf)
		return nil, ErrTooLarge
	case err != nil:
		r.putBuffer(buf)
		if enc == "" {
			return nil, fmt.Errorf("httpbody: reading body: %w", err)
		}
		return nil, fmt.Errorf("httpbody: reading %s body: %w", enc, err)
	}
	return &Body{buf: buf, r: r}, nil
}

func normalize(contentEncoding string) string {
	enc := strings.ToLower(strings.TrimSpace(contentEncoding))
	if enc == "identity" {
		return ""
	}
	return enc
}

// rawCap is one more than the number of raw bytes accepted for a body in
// the (normalized) encoding enc. Compressed input gets some slack because
// incompressible data grows a little when compressed.
func (r *Reader) rawCap(enc string) int64 {
	if enc == "" {
		return r.limit + 1
	}
	return r.limit + r.limit/16 + 1024 + 1
}

func (r *Reader) getBuffer() *bytes.Buffer {
	if b, ok := r.bufs.Get().(*bytes.Buffer); ok {
		return b
	}
	return new(bytes.Buffer)
}

func (r *Reader) putBuffer(b *bytes.Buffer) {
	if b.Cap() > maxPooledBuffer {
		return
	}
	b.Reset()
	r.bufs.Put(b)
}

func (r *Reader) gzipReader(src io.Reader) (io.Reader, func(), error) {
	zr, ok := r.gzips.Get().(*gzip.Reader)
	if !ok {
		zr = new(gzip.Reader)
	}
	release := func() { r.gzips.Put(zr) }
	if err := zr.Reset(src); err != nil {
		return nil, release, err
	}
	return zr, release, nil
}

func (r *Reader) zstdReader(src io.Reader) (io.Reader, func(), error) {
	zr, ok := r.zstds.Get().(*zstd.Decoder)
	if !ok {
		var err error
		// Concurrency 1 decodes synchronously: no goroutines, so a pooled
		// decoder dropped by the GC leaks nothing. Windows up to 8 MiB
		// (what RFC 8878 asks decoders to support) are always accepted,
		// larger ones only up to the body limit.
		zr, err = zstd.NewReader(nil,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(uint64(max(r.limit, 8<<20))))
		if err != nil {
			return nil, nil, err
		}
	}
	release := func() {
		_ = zr.Reset(nil) // drop the reference to the request body
		r.zstds.Put(zr)
	}
	if err := zr.Reset(src); err != nil {
		return nil, release, err
	}
	return zr, release, nil
}

// isSizeError reports decoder errors that mean "this needs more memory than
// allowed" rather than "this is corrupt".
func isSizeError(err error) bool {
	return errors.Is(err, zstd.ErrWindowSizeExceeded) || errors.Is(err, zstd.ErrDecoderSizeExceeded)
}

// deflateReader accepts both forms clients send as "deflate": the zlib
// format HTTP specifies and the raw DEFLATE some clients use instead.
func deflateReader(src io.Reader) (io.Reader, error) {
	br := bufio.NewReader(src)
	hdr, err := br.Peek(2)
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	if isZlibHeader(hdr[0], hdr[1]) {
		return zlib.NewReader(br)
	}
	return flate.NewReader(br), nil
}

// isZlibHeader checks the RFC 1950 header: method 8 (deflate) and a check
// value making the first two bytes a multiple of 31.
func isZlibHeader(cmf, flg byte) bool {
	return cmf&0x0f == 8 && (uint16(cmf)<<8|uint16(flg))%31 == 0
}
