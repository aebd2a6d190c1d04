// Package embedded runs the servers of the zero-install default in-process: a Kafka-protocol broker (franz-go's
// kfake) that persists to a data directory. Clients reach it over TCP exactly as they reach a real cluster.
package embedded

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is a single-node Kafka-protocol broker.
type Broker struct {
	cluster *kfake.Cluster
	lock    *os.File
	addr    string
}

// StartBroker starts a broker that listens on listen (host:port) and keeps its log segments and offsets in
// dir, so that a restart resumes with the same topics, records and committed offsets.
func StartBroker(dir, listen string, log *slog.Logger) (*Broker, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create broker data dir: %w", err)
	}
	// Two brokers on one directory would corrupt each other's segments.
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	// kfake's default cluster id is the constant "kfake": every fresh data dir must get its own, because
	// detectors key their local state by it. A persisted data dir keeps the id it was created with.
	id, err := newClusterID()
	if err != nil {
		lock.Close()
		return nil, err
	}
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.ClusterID(id),
		kfake.DataDir(dir),
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, listen) }),
		kfake.WithLogger(kfakeLogger{log}),
		kfake.BrokerConfigs(map[string]string{"default.replication.factor": "1"}),
	)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("start embedded broker on %s: %w", listen, err)
	}
	return &Broker{cluster: c, lock: lock, addr: c.ListenAddrs()[0]}, nil
}

// Addr is the host:port clients connect to.
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker and flushes its data to disk.
func (b *Broker) Close() {
	b.cluster.Close()
	b.lock.Close()
}

func lockDir(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open lock file: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("data dir %s is in use by another fraudpipe process", dir)
		}
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	return f, nil
}

func newClusterID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("cluster id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		l.log.Error(fmt.Sprintf(msg, args...), "component", "broker")
	case kfake.LogLevelWarn:
		l.log.Warn(fmt.Sprintf(msg, args...), "component", "broker")
	}
}
