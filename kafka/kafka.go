// Package kafka holds the client settings every fraudpipe component shares, topic creation, the cluster's id and
// the followers of the control topics. Outside goka's consumers there is one Kafka client, franz-go: every client
// starts from ClientOptions (brokers, security, client id, compression, logging) and every writer from
// ProducerOptions. goka's consumers are sarama's, configured by SaramaConfig with the same security. It knows no
// domain package; goka's processors take these settings through kafka/gokaadapter.
package kafka

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
)

// Config is what every component needs to reach the cluster.
type Config struct {
	Brokers     []string
	Partitions  int           // partitions of every topic the pipeline creates; more allows more instances
	Replication int           // replication factor of created topics: 1 on the embedded broker, 3 in production
	Flush       time.Duration // how long the producer waits to batch records: latency against throughput
	// Compression of produced batches: none, gzip, snappy, lz4 or zstd. Compression spends producer and
	// consumer CPU to save network and broker disk; with the broker on the same machine it saves nothing.
	// The empty string means lz4.
	Compression string
	Security    Security
	// Partitioner places keys on partitions for every write of the pipeline; "" leaves goka's hasher in charge
	// (tests). The parts agree on it through AgreePartitioner.
	Partitioner Partitioner
	// DeliveryTimeout bounds how long a write may wait for a broker that is away before it fails (a processor then
	// stops with the error); 0 means DefaultDeliveryTimeout.
	DeliveryTimeout time.Duration
}

// Validate reports what is missing.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("no brokers")
	case c.Partitions < 1:
		return fmt.Errorf("partitions %d: must be at least 1", c.Partitions)
	case c.Replication < 1:
		return fmt.Errorf("replication %d: must be at least 1", c.Replication)
	}
	if _, err := c.codec(); err != nil {
		return err
	}
	if _, err := ParsePartitioner(string(c.Partitioner)); err != nil {
		return err
	}
	if err := c.Security.Validate(); err != nil {
		return err
	}
	// Read the TLS files now, so a wrong path is reported at start-up with its cause.
	return c.Security.apply(sarama.NewConfig())
}

func (c Config) codec() (sarama.CompressionCodec, error) {
	if c.Compression == "" {
		return sarama.CompressionLZ4, nil
	}
	var cc sarama.CompressionCodec
	if err := cc.UnmarshalText([]byte(c.Compression)); err != nil {
		return sarama.CompressionNone, fmt.Errorf("compression %q: want none, gzip, snappy, lz4 or zstd", c.Compression)
	}
	return cc, nil
}

// SaramaConfig is the configuration of goka's consumers, its consumer groups and its topic manager
// (kafka/gokaadapter/options.go); no other fraudpipe client is sarama's. It starts from goka's defaults, which keep its
// copartitioning rebalance strategy, and fixes the ones that would lose data or add latency here.
func (c Config) SaramaConfig(clientID string) *sarama.Config {
	sc := goka.DefaultConfig()
	sc.ClientID = clientID
	// Apache Kafka 4 dropped the request versions below 2.1 that goka's V2_0_0_0 default would use.
	sc.Version = sarama.V3_0_0_0
	// A new group must read payments from the start, not skip what was produced before it started.
	sc.Consumer.Offsets.Initial = sarama.OffsetOldest
	// The processors write through franz-go (gokaadapter/producer.go). A sarama producer built on this config, such
	// as goka's default one, writes as fraudpipe's writers do: idempotent, acknowledged by all in-sync replicas, and
	// with one request in flight, which keeps a partition's writes in order across retries.
	sc.Producer.RequiredAcks = sarama.WaitForAll
	sc.Net.MaxOpenRequests = 1
	sc.Producer.Idempotent = true
	sc.Producer.Flush.Frequency = c.Flush
	sc.Producer.Compression, _ = c.codec() // checked by Validate; an unknown name falls back to none
	sc.Consumer.Group.Session.Timeout = 10 * time.Second
	sc.Consumer.Group.Heartbeat.Interval = time.Second
	sc.Metadata.Retry.Max = 10
	sc.Metadata.Retry.Backoff = 500 * time.Millisecond
	if err := c.Security.apply(sc); err != nil {
		// Validate reported this at start-up. Fail closed: a TLS config that trusts nothing never connects, and
		// never falls back to plaintext.
		sc.Net.TLS.Enable, sc.Net.TLS.Config = true, &tls.Config{RootCAs: x509.NewCertPool(), MinVersion: tls.VersionTLS12}
	}
	return sc
}
