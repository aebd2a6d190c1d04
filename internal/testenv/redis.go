// Package testenv starts the real servers tests need (redis-server from Debian) on loopback and stops them
// with the test.
package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a redis-server process on 127.0.0.1 that a test can kill and restart on the same port.
type Redis struct {
	t    testing.TB
	Addr string
	dir  string
	cmd  *exec.Cmd
	done chan struct{}
	opts RedisOptions
	// CAFile is the PEM certificate that signs the server's TLS certificate (with TLS).
	CAFile string
}

// RedisOptions ask for AUTH and TLS, as a production Redis has them.
type RedisOptions struct {
	Password string
	TLS      bool
}

// URL is how a client reaches the server: redis:// or rediss://, with the password.
func (r *Redis) URL() string {
	scheme := "redis"
	if r.opts.TLS {
		scheme = "rediss"
	}
	auth := ""
	if r.opts.Password != "" {
		auth = ":" + r.opts.Password + "@"
	}
	return scheme + "://" + auth + r.Addr + "/0"
}

// StartRedis starts redis-server, or skips the test where it is not installed outside CI (CI must have it).
func StartRedis(t testing.TB) *Redis { return StartRedisWith(t, RedisOptions{}) }

// StartRedisWith starts redis-server with AUTH and/or TLS.
func StartRedisWith(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("redis-server is not installed; .ci/run installs it")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	r := &Redis{t: t, Addr: addr, dir: t.TempDir(), opts: opts}
	if opts.TLS {
		r.CAFile = writeServerCert(t, r.dir)
	}
	r.Start()
	t.Cleanup(r.Kill)
	return r
}

// Start (re)starts the server on its port and waits until it answers. Data written with appendfsync always
// survives a Kill, as it would a crash of a production Redis with AOF.
func (r *Redis) Start() {
	r.t.Helper()
	if err := r.TryStart(); err != nil {
		r.t.Fatal(err)
	}
}

// TryStart starts the server and waits until it answers, reporting what went wrong instead of failing the test:
// a goroutine may call it (a test may only be failed from its own goroutine).
func (r *Redis) TryStart() error {
	_, port, _ := net.SplitHostPort(r.Addr)
	args := []string{"--bind", "127.0.0.1", "--dir", r.dir, "--appendonly", "yes", "--appendfsync", "always",
		"--save", "", "--protected-mode", "no"}
	if r.opts.TLS {
		args = append(args, "--port", "0", "--tls-port", port, "--tls-cert-file", filepath.Join(r.dir, "cert.pem"),
			"--tls-key-file", filepath.Join(r.dir, "key.pem"), "--tls-auth-clients", "no")
	} else {
		args = append(args, "--port", port)
	}
	if r.opts.Password != "" {
		args = append(args, "--requirepass", r.opts.Password)
	}
	r.cmd = exec.Command("redis-server", args...)
	if err := r.cmd.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.done = make(chan struct{})
	go func() { r.cmd.Wait(); close(r.done) }()
	o, err := redis.ParseURL(r.URL())
	if err != nil {
		return err
	}
	if o.TLSConfig != nil {
		pool := x509.NewCertPool()
		pem, _ := os.ReadFile(r.CAFile)
		pool.AppendCertsFromPEM(pem)
		o.TLSConfig.RootCAs = pool
	}
	c := redis.NewClient(o)
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			return errors.New("redis-server did not answer within 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Kill stops the server with SIGKILL.
func (r *Redis) Kill() {
	if r.cmd == nil || r.cmd.Process == nil {
		return
	}
	r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Port returns the port as a number.
func (r *Redis) Port() int {
	_, p, _ := net.SplitHostPort(r.Addr)
	n, _ := strconv.Atoi(p)
	return n
}

// writeServerCert writes a self-signed certificate for 127.0.0.1 (cert.pem, key.pem) into dir and returns the
// path of the certificate for clients to trust.
func writeServerCert(t testing.TB, dir string) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	cert := filepath.Join(dir, "cert.pem")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return cert
}
