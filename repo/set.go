package repo

import "errors"

// Set is the repositories one command works with, in the order given. The policy
// for several repositories lives here (README, "Several repositories"): writes go
// to every repository and succeed only when all of them have the data; reads take
// the first good copy, falling back object by object, and report "not found" only
// when no repository has the object.
type Set []*Repo

// First calls read with each repository in order until one succeeds. A
// repository whose read fails with ErrNotFound is skipped quietly; the other
// failures (an unreachable repository, a corrupt copy) are kept; read's errors
// should name the repository (the Repo methods' do). found tells whether any repository answered other than "not found";
// err joins the failures when no read succeeded.
func (s Set) First(read func(r *Repo) error) (found bool, err error) {
	var errs []error
	for _, r := range s {
		err := read(r)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, ErrNotFound) {
			continue
		}
		found = true
		errs = append(errs, err)
	}
	return found, errors.Join(errs...)
}

// All calls write with each repository in order and stops at the first failure.
func (s Set) All(write func(r *Repo) error) error {
	for _, r := range s {
		if err := write(r); err != nil {
			return err
		}
	}
	return nil
}
