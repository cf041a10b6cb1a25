package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/ptrace"
	"go.opentelemetry.io/collector/pdata/ptrace/ptraceotlp"
)

// StatusError is a non-success HTTP answer.
type StatusError struct {
	Code int
	Body string
	// RetryAfter is the Retry-After header of a refusal, if any.
	RetryAfter string
}

func (e *StatusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.Code, e.Body) }

// PostTraces sends td as an OTLP/HTTP protobuf request to baseURL/v1/traces
// and returns nil only for a 200 answer (the data is acknowledged).
func PostTraces(ctx context.Context, c *http.Client, baseURL string, td ptrace.Traces) error {
	body, err := ptraceotlp.NewExportRequestFromTraces(td).MarshalProto()
	if err != nil {
		return err
	}
	return PostEncodedTraces(ctx, c, baseURL, body)
}

// PostEncodedTraces sends an already marshalled OTLP/HTTP protobuf trace
// request (EncodedTraces.Next) to baseURL/v1/traces; nil only for 200.
func PostEncodedTraces(ctx context.Context, c *http.Client, baseURL string, body []byte) error {
	return post(ctx, c, baseURL+"/v1/traces", "application/x-protobuf", "", body, http.StatusOK)
}

// PostLogs sends ld to baseURL/v1/logs; nil only for 200.
func PostLogs(ctx context.Context, c *http.Client, baseURL string, ld plog.Logs) error {
	body, err := plogotlp.NewExportRequestFromLogs(ld).MarshalProto()
	if err != nil {
		return err
	}
	return post(ctx, c, baseURL+"/v1/logs", "application/x-protobuf", "", body, http.StatusOK)
}

// PostRemoteWrite sends req as remote_write 1.0 to url; nil only for 204.
func PostRemoteWrite(ctx context.Context, c *http.Client, url string, req *prompb.WriteRequest) error {
	raw, err := req.Marshal()
	if err != nil {
		return err
	}
	return post(ctx, c, url, "application/x-protobuf", "snappy", snappy.Encode(nil, raw), http.StatusNoContent)
}

func post(ctx context.Context, c *http.Client, url, contentType, encoding string, body []byte, ok int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	if encoding != "" {
		req.Header.Set("Content-Encoding", encoding)
		req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != ok {
		return &StatusError{Code: resp.StatusCode, Body: string(msg), RetryAfter: resp.Header.Get("Retry-After")}
	}
	return nil
}
