package main

import (
	"testing"

	"github.com/spf13/cobra"
)

// Every command a user runs shows examples in its help, and its man page is generated from
// the same tree.
func TestEveryCommandHasExamples(t *testing.T) {
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if sub.Hidden || sub.Name() == "help" || sub.Name() == "completion" || sub.Parent().Name() == "completion" {
				continue
			}
			if sub.Example == "" {
				t.Errorf("%s has no Example in its help", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(newRootCmd())
}
