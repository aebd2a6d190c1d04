package main

import (
	"context"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/fraudpipe/fraudpipe/kafka"
	"github.com/fraudpipe/fraudpipe/metrics"
	"github.com/fraudpipe/fraudpipe/processors"
)

// deps is what the pipeline's parts share in one process.
type deps struct {
	kafka    kafka.Config
	stateDir string // local storage base; one subdirectory per cluster id
	// stateCacheMiB is the memory for local state values (processors/store): accounts that fit are read
	// without LevelDB.
	stateCacheMiB int
	reg           *prometheus.Registry
	log           *slog.Logger
	// health answers /healthz and /readyz; every part adds its check. procMetrics count restarts and dead
	// letters of every processor; records is the policy for records that keep failing.
	health      *metrics.Health
	procMetrics *processors.Metrics
	records     recordFlags
}

// defaultStateCacheMiB caches tables of up to about 1,300,000 accounts (about 400 bytes each with the records
// that re-scoring after a late payment needs, mapped outside the Go heap, so a MiB of cache is a MiB of RSS), with
// room left for the rest of the detector within 1 GiB at a million accounts (docs/performance.md).
const (
	defaultStateCacheMiB = 512
	stateCacheHelp       = "MiB of memory that caches whole state tables (reads never reach LevelDB); tables beyond it are read from LevelDB"
)

// prepare waits for the cluster, agrees on the pipeline's partitioner, creates the pipeline's topics and returns the local storage directory for it
// ("" when the part keeps no local state).
func (d *deps) prepare(ctx context.Context) (storage string, err error) {
	if err := d.kafka.Validate(); err != nil {
		return "", err
	}
	if d.kafka, err = createPipeline(ctx, d.kafka, d.log); err != nil {
		return "", err
	}
	if d.stateDir == "" {
		return "", nil
	}
	id, err := d.kafka.ClusterID(ctx)
	if err != nil {
		return "", err
	}
	return processors.StorageDir(d.stateDir, id, d.log)
}
