package etcdtest

import (
	"crypto/tls"
	"crypto/x509"
	"path/filepath"
	"testing"

	"github.com/vigil-observability/vigil/internal/testcert"
)

// certs are a throwaway certificate for 127.0.0.1, as files for etcd and
// as the client's trust.
type certs struct {
	certFile, keyFile string
	client            *tls.Config
}

func newCerts(t testing.TB) *certs {
	t.Helper()
	dir := t.TempDir()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(testcert.Write(t, dir)) {
		t.Fatal("etcdtest: the test certificate does not parse")
	}
	return &certs{
		certFile: filepath.Join(dir, "tls.crt"),
		keyFile:  filepath.Join(dir, "tls.key"),
		client:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
	}
}
