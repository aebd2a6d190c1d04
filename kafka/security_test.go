package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/fraudpipe/fraudpipe/topics"
)

// selfSigned makes a certificate for 127.0.0.1 and writes it as a PEM file a client can trust.
func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "kfake"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

// A broker that requires SASL/SCRAM over TLS: the pipeline's clients connect with the right credentials and CA,
// and are refused otherwise.
func TestSCRAMOverTLS(t *testing.T) {
	cert, ca := selfSigned(t)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(),
		kfake.Superuser(sarama.SASLTypeSCRAMSHA256, "fraudpipe", "s3cret"),
		kfake.TLS(&tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	good := Config{Brokers: c.ListenAddrs(), Partitions: 3, Replication: 1, Flush: time.Millisecond,
		Security: Security{SASLMechanism: sarama.SASLTypeSCRAMSHA256, User: "fraudpipe", Password: "s3cret", TLS: true, CAFile: ca}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := good.WaitForCluster(ctx, slog.Default()); err != nil {
		t.Fatal(err)
	}
	if err := good.EnsureTopics(ctx, []topics.Spec{{Name: "payments", Retention: time.Hour}}); err != nil {
		t.Fatalf("create topics over SCRAM/TLS: %v", err)
	}
	p, err := sarama.NewSyncProducer(good.Brokers, func() *sarama.Config {
		sc := good.SaramaConfig("test")
		sc.Producer.Return.Successes = true
		return sc
	}())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: "payments", Value: sarama.StringEncoder("x")}); err != nil {
		t.Fatalf("produce over SCRAM/TLS: %v", err)
	}
	p.Close()
	// franz-go clients (the processors' producer among them) with the same settings.
	opts, err := good.ClientOptions("test", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	kc, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := kc.ProduceSync(ctx, &kgo.Record{Topic: "payments", Key: []byte("k"), Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatalf("franz-go client over SCRAM/TLS: %v", err)
	}
	kc.Close()

	good.DeliveryTimeout = 2 * time.Second
	for name, bad := range map[string]Security{
		"wrong password": {SASLMechanism: sarama.SASLTypeSCRAMSHA256, User: "fraudpipe", Password: "nope", TLS: true, CAFile: ca},
		"no TLS":         {SASLMechanism: sarama.SASLTypeSCRAMSHA256, User: "fraudpipe", Password: "s3cret"},
		"untrusted CA":   {SASLMechanism: sarama.SASLTypeSCRAMSHA256, User: "fraudpipe", Password: "s3cret", TLS: true},
	} {
		cfg := good
		cfg.Security = bad
		sc := cfg.SaramaConfig("test")
		sc.Net.DialTimeout, sc.Metadata.Retry.Max = 2*time.Second, 0
		if client, err := sarama.NewClient(cfg.Brokers, sc); err == nil {
			client.Close()
			t.Errorf("%s: connected", name)
		}
		opts, err := cfg.ClientOptions("test", slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		kc, err := kgo.NewClient(append(opts, kgo.RecordDeliveryTimeout(cfg.DeliveryTimeout))...)
		if err != nil {
			t.Fatal(err)
		}
		if err := kc.ProduceSync(ctx, &kgo.Record{Topic: "payments", Value: []byte("x")}).FirstErr(); err == nil {
			t.Errorf("%s: a franz-go client wrote", name)
		}
		kc.Close()
	}
}

func TestSecurityIsValidatedAtStartUp(t *testing.T) {
	for _, c := range []struct {
		s    Security
		want string
	}{
		{Security{SASLMechanism: "GSSAPI", User: "u", Password: "p"}, "want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
		{Security{SASLMechanism: "SCRAM-SHA-512", User: "u"}, EnvPassword},
		{Security{TLS: true, CAFile: "/no/such/ca.pem"}, "kafka CA file"},
		{Security{TLS: true, CertFile: "c.pem"}, "both the cert file and the key file"},
	} {
		err := Config{Brokers: []string{"x:9092"}, Partitions: 1, Replication: 1, Security: c.s}.Validate()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: got %v, want %q", c.s, err, c.want)
		}
	}
}

func TestCompressionIsValidatedAndApplied(t *testing.T) {
	base := Config{Brokers: []string{"x:9092"}, Partitions: 1, Replication: 1}
	for name, want := range map[string]struct {
		sarama sarama.CompressionCodec
		kgo    kgo.CompressionCodec
	}{
		"":     {sarama.CompressionLZ4, kgo.Lz4Compression()},
		"none": {sarama.CompressionNone, kgo.NoCompression()},
		"zstd": {sarama.CompressionZSTD, kgo.ZstdCompression()},
		"gzip": {sarama.CompressionGZIP, kgo.GzipCompression()},
	} {
		c := base
		c.Compression = name
		if err := c.Validate(); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		if got := c.SaramaConfig("t").Producer.Compression; got != want.sarama {
			t.Errorf("%q: producer compression %v, want %v", name, got, want.sarama)
		}
		if got, _ := c.kgoCodec(); got != want.kgo {
			t.Errorf("%q: the processors' producer compresses with %v, want %v", name, got, want.kgo)
		}
	}
	c := base
	c.Compression = "brotli"
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), `"brotli"`) {
		t.Fatalf("unknown compression: %v", err)
	}
}
