// tls_test.go: Dial over wss:// to a real broker serving TLS with certificates made here
// (a CA, a server certificate for 127.0.0.1 signed by it, and a second CA that signed
// nothing), and the bearer token sent once, in the upgrade's header.

package fixturebroker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	fb "fixturebroker.dev/fixturebroker"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

// issue makes a certificate for tmpl signed by ca (self-signed when ca is nil).
func issue(t *testing.T, tmpl *x509.Certificate, ca *testCA) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = big.NewInt(time.Now().UnixNano())
	tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(48*time.Hour)
	parent, signer := tmpl, key
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, signer)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

func newCA(t *testing.T, name string) *testCA {
	return issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: name}, IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}, nil)
}

func write(t *testing.T, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tlsBroker starts a broker serving wss:// with a certificate of ca's for 127.0.0.1.
func tlsBroker(t *testing.T, ca *testCA, ports string) *fb.BrokerProcess {
	dir := t.TempDir()
	srv := issue(t, &x509.Certificate{Subject: pkix.Name{CommonName: "broker"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}, ca)
	keyDER, err := x509.MarshalECPrivateKey(srv.key)
	if err != nil {
		t.Fatal(err)
	}
	b := start(t, ports, "--port-quarantine-ms", "0",
		"--tls-cert", write(t, dir, "server.pem", srv.pem),
		"--tls-key", write(t, dir, "server.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})))
	if !strings.HasPrefix(b.URL, "wss://127.0.0.1:") {
		t.Fatalf("not a wss:// broker: %s", b.URL)
	}
	return b
}

func leaseOne(t *testing.T, url string, opts *fb.Options) {
	t.Helper()
	ctx := ctxT(t)
	c, err := fb.Dial(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	lease, err := c.Acquire(ctx, map[string]fb.Spec{"p": fb.Port()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lease.Release(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestWSSVerifiesTheBrokerWithTLSConfigOrFIXTURE_BROKER_CA(t *testing.T) {
	ca, other := newCA(t, "ca"), newCA(t, "other-ca")
	b := tlsBroker(t, ca, "31129-31130")
	t.Setenv("FIXTURE_BROKER_CA", "")
	pool := x509.NewCertPool()
	pool.AddCert(ca.cert)
	leaseOne(t, b.URL, &fb.Options{TLSConfig: &tls.Config{RootCAs: pool}})
	t.Setenv("FIXTURE_BROKER_CA", write(t, t.TempDir(), "ca.pem", ca.pem))
	leaseOne(t, b.URL, nil)

	// Another CA, from the environment or the system's store: refused, and says why.
	for _, caFile := range []string{write(t, t.TempDir(), "other.pem", other.pem), ""} {
		t.Setenv("FIXTURE_BROKER_CA", caFile)
		_, err := fb.Dial(ctxT(t), b.URL, nil)
		var fe *fb.Error
		if !errors.As(err, &fe) || fe.Name != fb.ConnectFailed ||
			!strings.Contains(fe.Message, "the broker's TLS certificate was not accepted") {
			t.Fatalf("with CA %q: %v", caFile, err)
		}
	}

	// Bad settings are the caller's error.
	t.Setenv("FIXTURE_BROKER_CA", filepath.Join(t.TempDir(), "missing.pem"))
	for _, opts := range []*fb.Options{nil, {HTTPClient: http.DefaultClient, TLSConfig: &tls.Config{}}} {
		_, err := fb.Dial(ctxT(t), b.URL, opts)
		var fe *fb.Error
		if !errors.As(err, &fe) || fe.Name != fb.InvalidArgument {
			t.Fatalf("%v", err)
		}
	}
}

func TestTheTokenGoesInTheUpgradeAndAWrongOneIsUNAUTHENTICATED(t *testing.T) {
	file := write(t, t.TempDir(), "tokens", []byte("go-secret\n"))
	b := start(t, "31131-31131", "--token-file", file)
	t.Setenv("FIXTURE_BROKER_TOKEN", "")
	_, err := fb.Dial(ctxT(t), b.URL, &fb.Options{Token: "wrong"})
	var fe *fb.Error
	if !errors.As(err, &fe) || fe.Name != "UNAUTHENTICATED" || fe.Code != 1001 || !fe.FromBroker() {
		t.Fatalf("%#v", err)
	}
	leaseOne(t, b.URL, &fb.Options{Token: "go-secret"})
}
