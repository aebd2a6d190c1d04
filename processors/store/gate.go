package store

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	lstorage "github.com/syndtr/goleveldb/leveldb/storage"
)

// Gate bounds how many LevelDB tables (and journal snapshots) the stores sharing it build at once. By default the
// stores of a process share DefaultGate: half the cores, at least one.
//
// Each partition is its own LevelDB, with its own compaction goroutine, and a detector's partitions receive
// the same load: their memtables fill, flush and compact within the same second. A compaction of a large table
// keeps a core busy for a long moment; several at once hold every core, and the payments of that second wait
// behind them for the scheduler. Building tables one at a time per two cores leaves the others to the payments. Compactions take as much CPU as before, only spread
// out; a store whose memtables fill while others compact slows its writes, which the write-behind absorbs.
//
// The token is held while a table file is written: from its creation to its close, which goleveldb does on
// every path, failures included. A compaction waits for it only between tables, where it holds no other
// store's resources, so a store never waits on another while holding the token.
type Gate chan struct{}

// NewGate returns a gate that lets n table builds run at once.
func NewGate(n int) Gate { return make(Gate, max(n, 1)) }

// DefaultGate is the gate of stores whose Options name none.
var DefaultGate = NewGate(runtime.GOMAXPROCS(0) / 2)

func (g Gate) take()    { g <- struct{}{} }
func (g Gate) release() { <-g }

// openLevelDB opens the LevelDB in path with its table writes gated by gate.
func openLevelDB(path string, o *opt.Options, gate Gate) (*leveldb.DB, lstorage.Storage, error) {
	stor, err := lstorage.OpenFile(path, o.GetReadOnly())
	if err != nil {
		return nil, nil, fmt.Errorf("open leveldb %s: %w", path, err)
	}
	g := gatedStorage{Storage: stor, gate: gate}
	db, err := leveldb.Open(g, o)
	if err != nil {
		stor.Close()
		return nil, nil, fmt.Errorf("open leveldb %s: %w", path, err)
	}
	return db, g, nil
}

type gatedStorage struct {
	lstorage.Storage
	gate Gate
}

// Create takes a token for a table file: memtable flushes and compactions write tables, nothing else does.
func (g gatedStorage) Create(fd lstorage.FileDesc) (lstorage.Writer, error) {
	if fd.Type != lstorage.TypeTable {
		return g.Storage.Create(fd)
	}
	g.gate.take()
	w, err := g.Storage.Create(fd)
	if err != nil {
		g.gate.release()
		return nil, err
	}
	return &gatedWriter{Writer: w, gate: g.gate}, nil
}

type gatedWriter struct {
	lstorage.Writer
	gate    Gate
	release sync.Once
}

func (w *gatedWriter) Close() error {
	err := w.Writer.Close()
	w.release.Do(w.gate.release)
	return err
}
