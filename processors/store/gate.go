package store

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// tableBuilds bounds how many LevelDB tables the process's stores build at once: half the cores, at least one.
//
// Each partition is its own LevelDB, with its own compaction goroutine, and a detector's partitions receive
// the same load: their memtables fill, flush and compact within the same second. A compaction of a table of a
// few hundred thousand accounts rewrites tens of MiB and keeps a core busy for 300-700 ms; four of them at
// once held both cores of the bench machine, and the payments of that second waited behind them for the
// scheduler. Building tables
// one at a time leaves the other core to the payments. Compactions take as much CPU as before, only spread
// out; a store whose memtables fill while others compact slows its writes, which the write-behind absorbs.
//
// The token is held while a table file is written: from its creation to its close, which goleveldb does on
// every path, failures included. A compaction waits for it only between tables, where it holds no other
// store's resources, so a store never waits on another while holding the token.
var tableBuilds = make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/2))

// openLevelDB opens the LevelDB in path with its table writes gated by tableBuilds.
func openLevelDB(path string, o *opt.Options) (*leveldb.DB, lstorage.Storage, error) {
	stor, err := lstorage.OpenFile(path, o.GetReadOnly())
	if err != nil {
		return nil, nil, fmt.Errorf("open leveldb %s: %w", path, err)
	}
	g := gatedStorage{Storage: stor}
	db, err := leveldb.Open(g, o)
	if err != nil {
		stor.Close()
		return nil, nil, fmt.Errorf("open leveldb %s: %w", path, err)
	}
	return db, g, nil
}

type gatedStorage struct{ lstorage.Storage }

// Create takes a token for a table file: memtable flushes and compactions write tables, nothing else does.
func (g gatedStorage) Create(fd lstorage.FileDesc) (lstorage.Writer, error) {
	if fd.Type != lstorage.TypeTable {
		return g.Storage.Create(fd)
	}
	tableBuilds <- struct{}{}
	w, err := g.Storage.Create(fd)
	if err != nil {
		<-tableBuilds
		return nil, err
	}
	return &gatedWriter{Writer: w}, nil
}

type gatedWriter struct {
	lstorage.Writer
	release sync.Once
}

func (w *gatedWriter) Close() error {
	err := w.Writer.Close()
	w.release.Do(func() { <-tableBuilds })
	return err
}
