package otlp

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"net"
	"strings"
	"sync/atomic"
	"testing"

	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/vigil-observability/vigil/internal/auth"
	"github.com/vigil-observability/vigil/internal/ingest"
	"github.com/vigil-observability/vigil/internal/ingest/decodecost"
)

// countingListener counts the bytes the server reads from its connections.
type countingListener struct {
	net.Listener
	read *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{Conn: c, read: l.read}, nil
}

type countingConn struct {
	net.Conn
	read *atomic.Int64
}

func (c countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

// serveCountingGRPC serves srv over loopback TCP (real HTTP/2 flow
// control, unlike bufconn's unbounded buffer) and returns a client
// connection and the count of bytes the server has read.
func serveCountingGRPC(t *testing.T, srv *grpc.Server) (*grpc.ClientConn, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	read := new(atomic.Int64)
	go func() { _ = srv.Serve(countingListener{Listener: ln, read: read}) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, read
}

// bigTraces is a valid request of about size bytes that does not compress.
func bigTraces(size int) ptraceotlp.ExportRequest {
	var b strings.Builder
	x := uint32(1)
	for b.Len() < size {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b.WriteByte('a' + byte(x%26))
	}
	return ptraceotlp.NewExportRequestFromTraces(makeTraces(b.String()))
}

// maxUnreadBytes is what a refused call may cost the server: its headers,
// the client's first flow-control window of data, and frames in flight.
const maxUnreadBytes = 2 << 20

func TestGRPCUnauthenticatedMessageIsNotRead(t *testing.T) {
	sum := sha256.Sum256([]byte("collector-token"))
	a, err := auth.New(auth.Config{BearerTokens: []auth.BearerToken{{
		Name: "collector", SHA256: hex.EncodeToString(sum[:]), Roles: []auth.Role{auth.RoleIngest},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	opts := testOptions(rec)
	opts.Limits.MaxRequestBytes = 32 << 20
	conn, read := serveCountingGRPC(t, NewGRPCServer(opts, a.GRPCOptions()...))
	client := ptraceotlp.NewGRPCClient(conn)
	big := bigTraces(16 << 20)

	for _, c := range []struct {
		name, header string
		want         codes.Code
	}{
		{"no credentials", "", codes.Unauthenticated},
		{"wrong token", "Bearer nope", codes.Unauthenticated},
		{"wrong password", "Basic " + "dXNlcjpwYXNz", codes.Unauthenticated},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx := t.Context()
			if c.header != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", c.header)
			}
			before := read.Load()
			_, err := client.Export(ctx, big)
			if status.Code(err) != c.want {
				t.Fatalf("Export = %v, want %v", err, c.want)
			}
			if n := read.Load() - before; n > maxUnreadBytes {
				t.Errorf("the server read %d bytes of a refused 16 MiB call; it must refuse before reading the message", n)
			}
		})
	}
	if len(rec.traces) != 0 {
		t.Error("an unauthenticated call reached the consumer")
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer collector-token")
	if _, err := client.Export(ctx, ptraceotlp.NewExportRequestFromTraces(makeTraces("ok"))); err != nil {
		t.Fatalf("authenticated call: %v", err)
	}
}

func TestGRPCCallRefusedByAdmissionIsNotRead(t *testing.T) {
	entered, unblock := make(chan struct{}), make(chan struct{})
	consumer := ingest.TracesConsumerFunc(func(ctx context.Context, td ptrace.Traces) error {
		entered <- struct{}{}
		<-unblock
		return nil
	})
	opts := testOptions(nil)
	opts.Traces, opts.Logs, opts.Metrics = consumer, nil, nil
	opts.Limits.MaxRequestBytes = 32 << 20
	opts.MaxConcurrentRequests = 1
	conn, read := serveCountingGRPC(t, NewGRPCServer(opts))
	client := ptraceotlp.NewGRPCClient(conn)

	first := make(chan error, 1)
	go func() {
		_, err := client.Export(context.Background(), ptraceotlp.NewExportRequestFromTraces(makeTraces("holds the slot")))
		first <- err
	}()
	<-entered
	before := read.Load()
	_, err := client.Export(t.Context(), bigTraces(16<<20), grpc.UseCompressor(gzip.Name))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("call while every slot is taken: %v, want UNAVAILABLE", err)
	}
	if n := read.Load() - before; n > maxUnreadBytes {
		t.Errorf("the server read %d bytes of a call it refused for want of a slot; admission must come before the read", n)
	}
	close(unblock)
	if err := <-first; err != nil {
		t.Fatalf("admitted call: %v", err)
	}
}

func TestGRPCDecodeAmplificationRefused(t *testing.T) {
	rec := &recorder{}
	opts := testOptions(rec)
	opts.Limits.MaxRequestBytes = 8 << 20
	opts.DecodeBudget = decodecost.NewBudget(64 << 20)
	conn, _ := serveCountingGRPC(t, NewGRPCServer(opts))
	// A million empty ResourceSpans: 2 MB, a few kB gzipped, over 100 MB decoded.
	body := []byte(strings.Repeat("\x0a\x00", 1_000_000))
	err := sendRaw("/"+traceServiceName+"/Export", body)(t.Context(), conn)
	if status.Code(err) != codes.ResourceExhausted || !strings.Contains(status.Convert(err).Message(), "decode") {
		t.Errorf("amplifying request: %v, want RESOURCE_EXHAUSTED naming the decoded size", err)
	}
	if len(rec.traces) != 0 {
		t.Error("the amplifying request reached the consumer")
	}
}

// TestGRPCCallRefusedByDecodeBudgetIsNotRead: gRPC inflates a message
// without a hook to charge it on the way, so a call pays for the largest
// message first; when the budget cannot cover that now, the call is
// refused as retryable before its message is read.
func TestGRPCCallRefusedByDecodeBudgetIsNotRead(t *testing.T) {
	rec := &recorder{}
	opts := testOptions(rec)
	opts.Limits.MaxRequestBytes = 32 << 20
	budget := decodecost.NewBudget(64 << 20)
	opts.DecodeBudget = budget
	held, err := budget.Reserve(40 << 20) // other requests being decoded
	if err != nil {
		t.Fatal(err)
	}
	conn, read := serveCountingGRPC(t, NewGRPCServer(opts))
	client := ptraceotlp.NewGRPCClient(conn)
	before := read.Load()
	_, err = client.Export(t.Context(), bigTraces(16<<20))
	if status.Code(err) != codes.Unavailable {
		t.Errorf("call while the budget is taken: %v, want UNAVAILABLE", err)
	}
	if n := read.Load() - before; n > maxUnreadBytes {
		t.Errorf("the server read %d bytes of a call it refused for want of budget", n)
	}
	held()
	if _, err := client.Export(t.Context(), bigTraces(1<<20)); err != nil {
		t.Errorf("once the budget is free: %v", err)
	}
	if len(rec.traces) != 1 {
		t.Errorf("%d requests stored, want the one admitted", len(rec.traces))
	}
}
