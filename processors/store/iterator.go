package store

import (
	"github.com/syndtr/goleveldb/leveldb"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// iterator walks a LevelDB snapshot and skips the offset key, like goka's own.
type iterator struct{ it ldbiter.Iterator }

func newIterator(db *leveldb.DB, start, limit []byte) *iterator {
	var r *util.Range
	switch {
	case len(limit) > 0:
		r = &util.Range{Start: start, Limit: limit}
	case len(start) > 0:
		r = util.BytesPrefix(start)
	}
	// A full scan (expiry) would otherwise push the hot blocks out of LevelDB's cache.
	return &iterator{it: db.NewIterator(r, &opt.ReadOptions{DontFillCache: true})}
}

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}

func (i *iterator) Seek(key []byte) bool {
	if !i.it.Seek(key) {
		return false
	}
	return string(i.it.Key()) != offsetKey || i.Next()
}

func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Release() }
