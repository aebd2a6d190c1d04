package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	kscram "github.com/twmb/franz-go/pkg/sasl/scram"
	"github.com/xdg-go/scram"
)

// EnvPassword holds the SASL password. It is read from the environment only, never from a flag or a file in the
// repository, and never logged.
const EnvPassword = "FRAUDPIPE_KAFKA_PASSWORD"

// Security is how clients authenticate to the cluster and encrypt their connections.
type Security struct {
	SASLMechanism string // "", PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
	User          string
	Password      string // from EnvPassword
	TLS           bool
	CAFile        string // PEM; empty: the system roots
	CertFile      string // PEM client certificate, for brokers that require one
	KeyFile       string
	SkipVerify    bool // testing only: accept any server certificate
}

// Validate reports an incomplete security configuration.
func (s Security) Validate() error {
	if (s.CertFile == "") != (s.KeyFile == "") {
		return errors.New("a TLS client certificate needs both the cert file and the key file")
	}
	switch s.SASLMechanism {
	case "":
		return nil
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
	default:
		return fmt.Errorf("SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", s.SASLMechanism)
	}
	if s.User == "" || s.Password == "" {
		return fmt.Errorf("SASL %s needs a user and the password in %s", s.SASLMechanism, EnvPassword)
	}
	return nil
}

// tlsConfig builds the TLS settings both clients use (sarama's and franz-go's); nil when TLS is off.
func (s Security) tlsConfig() (*tls.Config, error) {
	if !s.TLS {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: s.SkipVerify} //nolint:gosec // only when asked for
	if s.CAFile != "" {
		pem, err := os.ReadFile(s.CAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka CA file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("kafka CA file %s: no certificate found", s.CAFile)
		}
	}
	if s.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// apply sets sarama's network security from s.
func (s Security) apply(sc *sarama.Config) error {
	tc, err := s.tlsConfig()
	if err != nil {
		return err
	}
	if tc != nil {
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, tc
	}
	if s.SASLMechanism == "" {
		return nil
	}
	sc.Net.SASL.Enable = true
	sc.Net.SASL.Handshake = true
	sc.Net.SASL.User, sc.Net.SASL.Password = s.User, s.Password
	sc.Net.SASL.Mechanism = sarama.SASLMechanism(s.SASLMechanism)
	switch s.SASLMechanism {
	case sarama.SASLTypeSCRAMSHA256:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA256} }
	case sarama.SASLTypeSCRAMSHA512:
		sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: scram.SHA512} }
	}
	return nil
}

// kgoOptions are the same settings for a franz-go client, every client but goka's consumers (ClientOptions).
func (s Security) kgoOptions() ([]kgo.Opt, error) {
	tc, err := s.tlsConfig()
	if err != nil {
		return nil, err
	}
	var opts []kgo.Opt
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	switch s.SASLMechanism {
	case sarama.SASLTypePlaintext:
		opts = append(opts, kgo.SASL(plain.Auth{User: s.User, Pass: s.Password}.AsMechanism()))
	case sarama.SASLTypeSCRAMSHA256:
		opts = append(opts, kgo.SASL(kscram.Auth{User: s.User, Pass: s.Password}.AsSha256Mechanism()))
	case sarama.SASLTypeSCRAMSHA512:
		opts = append(opts, kgo.SASL(kscram.Auth{User: s.User, Pass: s.Password}.AsSha512Mechanism()))
	}
	return opts, nil
}

// scramClient adapts xdg-go/scram to sarama's SCRAMClient.
type scramClient struct {
	hash scram.HashGeneratorFcn
	conv *scram.ClientConversation
}

func (c *scramClient) Begin(user, password, authzID string) error {
	client, err := c.hash.NewClient(user, password, authzID)
	if err != nil {
		return fmt.Errorf("scram: %w", err)
	}
	c.conv = client.NewConversation()
	return nil
}

func (c *scramClient) Step(challenge string) (string, error) { return c.conv.Step(challenge) }
func (c *scramClient) Done() bool                            { return c.conv.Done() }
