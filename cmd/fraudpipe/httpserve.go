package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sync/errgroup"
)

// serveHTTP serves hs on ln in g until ctx ends, then shuts it down (open requests get 5 s). With ready channels
// it takes requests only once all are closed, calling onReady first; ctx ending before that closes ln unserved.
func serveHTTP(ctx context.Context, g *errgroup.Group, name string, hs *http.Server, ln net.Listener, onReady func(), ready ...<-chan struct{}) {
	g.Go(func() error {
		for _, ch := range ready {
			select {
			case <-ch:
			case <-ctx.Done():
				ln.Close()
				return nil
			}
		}
		if onReady != nil {
			onReady()
		}
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
}

// writeDevSecret writes a developer's secret (fraudpipe run's console password, API key) to dir/name, readable
// by its owner only: it never goes to a log. It returns the file's path.
func writeDevSecret(dir, name, secret string) (string, error) {
	path := filepath.Join(dir, name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, []byte(secret+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("%s: %w", name, err)
	}
	return path, nil
}
