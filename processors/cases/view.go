package cases

import (
	"errors"
	"fmt"

	"github.com/lovoo/goka"

	domain "github.com/fraudpipe/fraudpipe/cases"
)

// NewView builds a view of the cases table: the query side. Run it (View.Run) before reading.
func NewView(brokers []string, opts ...goka.ViewOption) (*goka.View, error) {
	v, err := goka.NewView(brokers, Table, Codec{}, opts...)
	if err != nil {
		return nil, fmt.Errorf("cases view: %w", err)
	}
	return v, nil
}

// ErrNotReady is a read before the view has caught up with the table once.
var ErrNotReady = errors.New("the cases view is still reading the table")

// Reader answers queries about cases from a view.
type Reader struct{ View *goka.View }

// Account returns an account's cases, nil if it has none.
func (r Reader) Account(id string) (*domain.Account, error) {
	if !r.View.Recovered() {
		return nil, ErrNotReady
	}
	v, err := r.View.Get(id)
	if err != nil {
		return nil, fmt.Errorf("cases of %s: %w", id, err)
	}
	a, _ := v.(*domain.Account)
	return a, nil
}

// Each calls yield with every account's cases. It reads the whole table: the queue and the metrics need all open
// cases, and an account's value is small (cases.Account is bounded).
func (r Reader) Each(yield func(*domain.Account)) error {
	if !r.View.Recovered() {
		return ErrNotReady
	}
	it, err := r.View.Iterator()
	if err != nil {
		return fmt.Errorf("cases: %w", err)
	}
	defer it.Release()
	for it.Next() {
		v, err := it.Value()
		if err != nil {
			return fmt.Errorf("cases of %s: %w", it.Key(), err)
		}
		if a, ok := v.(*domain.Account); ok && a != nil {
			yield(a)
		}
	}
	return it.Err()
}
