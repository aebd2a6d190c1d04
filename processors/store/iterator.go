package store

import (
	"bytes"
	"slices"

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

// sliceIterator walks a copy of a cached table in key order.
type sliceIterator struct {
	keys, values [][]byte
	i            int // the current entry; -1 before the first
}

func newSliceIterator(a *arena, start, limit []byte) *sliceIterator {
	in := func(k []byte) bool { return true }
	switch {
	case len(limit) > 0:
		in = func(k []byte) bool { return bytes.Compare(k, start) >= 0 && bytes.Compare(k, limit) < 0 }
	case len(start) > 0:
		in = func(k []byte) bool { return bytes.HasPrefix(k, start) }
	}
	it := &sliceIterator{i: -1}
	var order []int
	a.each(func(k, v []byte) {
		if in(k) {
			order = append(order, len(it.keys))
			it.keys = append(it.keys, bytes.Clone(k))
			it.values = append(it.values, bytes.Clone(v))
		}
	})
	slices.SortFunc(order, func(x, y int) int { return bytes.Compare(it.keys[x], it.keys[y]) })
	keys, values := make([][]byte, len(order)), make([][]byte, len(order))
	for i, j := range order {
		keys[i], values[i] = it.keys[j], it.values[j]
	}
	it.keys, it.values = keys, values
	return it
}

func (i *sliceIterator) Next() bool {
	if i.i < len(i.keys) {
		i.i++
	}
	return i.i < len(i.keys)
}

// Seek moves to the first key at or after key.
func (i *sliceIterator) Seek(key []byte) bool {
	i.i, _ = slices.BinarySearchFunc(i.keys, key, bytes.Compare)
	return i.i < len(i.keys)
}

func (i *sliceIterator) Err() error { return nil }

func (i *sliceIterator) Key() []byte {
	if i.i < 0 || i.i >= len(i.keys) {
		return nil
	}
	return i.keys[i.i]
}

func (i *sliceIterator) Value() ([]byte, error) {
	if i.i < 0 || i.i >= len(i.values) {
		return nil, nil
	}
	return i.values[i.i], nil
}

func (i *sliceIterator) Release() { i.keys, i.values = nil, nil }
