package verify

import (
	"context"
	"sync"
)

// each calls fn for every item with jobs workers at once; every worker has its own scratch
// state, made by newState (buffers reused from one item to the next). It stops handing out
// items when ctx is done, waits for the workers, and returns ctx's error.
func each[T, S any](ctx context.Context, jobs int, items []T, newState func() S, fn func(S, T)) error {
	work := make(chan T)
	var wg sync.WaitGroup
	for range jobs {
		wg.Go(func() {
			s := newState()
			for it := range work {
				fn(s, it)
			}
		})
	}
feed:
	for _, it := range items {
		select {
		case work <- it:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	return ctx.Err()
}
