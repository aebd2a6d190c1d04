package store

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// tables counts the LevelDB table files in dir.
func tables(t *testing.T, dir string) int {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ".ldb") {
			n++
		}
	}
	return n
}

// While another store builds a table, a store's memtable flush waits; it proceeds once the token is free.
func TestTableBuildsWaitForTheToken(t *testing.T) {
	dir := t.TempDir()
	o := &opt.Options{WriteBuffer: 64 << 10}
	gate := NewGate(2)
	// Hold every token, as other stores' compactions would.
	for range cap(gate) {
		gate.take()
	}
	released := false
	release := func() {
		if !released {
			released = true
			for range cap(gate) {
				gate.release()
			}
		}
	}
	defer release()

	db, files, err := openLevelDB(dir, o, gate)
	if err != nil {
		t.Fatal(err)
	}
	// Enough to fill the memtable. goleveldb starts the flush by a trigger that is dropped when its compaction
	// goroutine is not waiting yet (a loaded machine, right after Open); CompactRange asks for the flush and
	// waits for it, so a flush is certainly under way and must wait for the token.
	value := make([]byte, 1024)
	for i := range 100 {
		if err := db.Put(fmt.Appendf(nil, "k%04d", i), value, nil); err != nil {
			t.Fatal(err)
		}
	}
	compacted := make(chan error, 1)
	go func() { compacted <- db.CompactRange(util.Range{}) }()
	deadline := time.Now().Add(300 * time.Millisecond)
	for time.Now().Before(deadline) {
		if n := tables(t, dir); n > 0 {
			t.Fatalf("%d table files written while the token was held", n)
		}
		time.Sleep(10 * time.Millisecond)
	}

	release()
	select {
	case err := <-compacted:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the flush did not finish after the token was released")
	}
	for deadline := time.Now().Add(10 * time.Second); tables(t, dir) == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			entries, _ := os.ReadDir(dir)
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			log, _ := os.ReadFile(dir + "/LOG")
			t.Fatalf("no table written after the token was released; %d tokens held; files %v; LOG:\n%s", len(gate), names, log)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := files.Close(); err != nil {
		t.Fatal(err)
	}
}

// Many stores flushing and compacting at once all finish, and give every token back.
func TestManyStoresShareTheTokens(t *testing.T) {
	gate := NewGate(1)
	var wg sync.WaitGroup
	errs := make(chan error, 2*8)
	for p := range 8 {
		wg.Go(func() {
			dir := t.TempDir()
			db, files, err := openLevelDB(dir, &opt.Options{WriteBuffer: 32 << 10, CompactionTableSize: 16 << 10}, gate)
			if err != nil {
				errs <- err
				return
			}
			value := make([]byte, 512)
			for i := range 3000 {
				if err := db.Put(fmt.Appendf(nil, "p%d-k%05d", p, i*7919%3000), value, nil); err != nil {
					errs <- err
					return
				}
			}
			errs <- db.Close()
			errs <- files.Close()
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("stores did not finish: a table build waits for a token nobody gives back")
	}
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n := len(gate); n != 0 {
		t.Fatalf("%d tokens still held after every store closed", n)
	}
}
