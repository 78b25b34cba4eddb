// Package objname holds the naming rules that object-store backends (Azure, GCS) share:
// which repository names they can store, how a location URL splits into a container or
// bucket and a prefix, and how a prefix joins a name.
//
// Invariant: a name CheckName accepts is a repo.ValidName without control characters, so
// it travels unchanged through XML and JSON listings and comes back as it was put.
package objname

import (
	"fmt"
	"strings"

	"github.com/pgward/pgward/repo"
)

// CheckName applies repo.ValidName plus the rule of object stores: no control characters,
// which their listings cannot carry back (or which they refuse). service names the store
// in the message.
func CheckName(name, service string) error {
	if err := repo.ValidName(name); err != nil {
		return err
	}
	for _, c := range []byte(name) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("%w %q: contains a control character, which %s names cannot hold", repo.ErrInvalidName, name, service)
		}
	}
	return nil
}

// Prefix returns the key prefix for a configured prefix p: "" or a valid name plus "/";
// leading and trailing slashes are ignored.
func Prefix(p, service string) (string, error) {
	p = strings.Trim(p, "/")
	if p == "" {
		return "", nil
	}
	if err := CheckName(p, service); err != nil {
		return "", fmt.Errorf("prefix: %w", err)
	}
	return p + "/", nil
}

// ParseURL splits "scheme://container/some/prefix" into the container (or bucket), checked
// with checkContainer, and the prefix ("some/prefix", or "" without one).
func ParseURL(u, scheme, service string, checkContainer func(string) error) (container, prefix string, err error) {
	rest, ok := strings.CutPrefix(u, scheme+"://")
	if !ok {
		return "", "", fmt.Errorf("parse %s URL %q: does not start with %s://", service, u, scheme)
	}
	container, prefix, _ = strings.Cut(rest, "/")
	if err := checkContainer(container); err != nil {
		return "", "", fmt.Errorf("parse %s URL %q: %w", service, u, err)
	}
	if strings.ContainsAny(prefix, "?#") {
		return "", "", fmt.Errorf("parse %s URL %q: a query or fragment is not allowed", service, u)
	}
	if _, err := Prefix(prefix, service); err != nil {
		return "", "", fmt.Errorf("parse %s URL %q: %w", service, u, err)
	}
	return container, strings.Trim(prefix, "/"), nil
}
