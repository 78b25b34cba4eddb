package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/pgward/pgward/internal/config"
	"github.com/pgward/pgward/repo"
	"github.com/spf13/cobra"
	"golang.org/x/term"
)

func newKeyCmd(o *config.Options) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "key",
		Example: `  pgward key list --passphrase-file /etc/pgward/passphrase`,
		Short:   "List, add, remove and change the passphrases of an encrypted repository",
		Long: `An encrypted repository can be opened with several passphrases, each with its
own copy of the master key wrapped under it (like LUKS key slots): a key. Adding,
removing or changing a key re-encrypts no data. The repository opens with the
passphrase of any of its keys; the last key cannot be removed.

Every command opens each --repo with the passphrase given as usual
(PGWARD_PASSPHRASE, --passphrase-file, --passphrase-command). key add and key
passwd take the new passphrase from --new-passphrase-file or
PGWARD_NEW_PASSPHRASE, else ask for it twice on the terminal.

The config holds a copy of one key: pgward releases that do not know key
objects open the repository with that key's passphrase only (key list marks
it "config").`,
		Args: noArgs,
	}
	cmd.AddCommand(newKeyListCmd(o), newKeyAddCmd(o), newKeyRemoveCmd(o), newKeyPasswdCmd(o))
	return cmd
}

// keyJSON is the stable shape of one key in 'key list --json'.
type keyJSON struct {
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	Host    string    `json:"host"`
	User    string    `json:"user"`
	Note    string    `json:"note"`
	Opened  bool      `json:"opened"`
	Config  bool      `json:"config"`
	Problem string    `json:"problem,omitempty"`
}

// keyListJSON is the stable shape of 'key list --json'.
type keyListJSON struct {
	Repos []keyRepoJSON `json:"repos"`
}

type keyRepoJSON struct {
	Repo string    `json:"repo"`
	Keys []keyJSON `json:"keys"`
}

func newKeyListCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Example: `  pgward key list --repo /var/lib/pgward --passphrase-file /etc/pgward/passphrase`,
		Short:   "List the keys of every repository",
		Long: `List the keys of every --repo, oldest first: ID, when and where it was made,
its note, "opened" for the key the given passphrase opened and "config" for the
key the config holds. A key object that is damaged or does not belong to the
repository is listed with the problem.

--json prints {"repos": [{"repo", "keys": [{"id", "created", "host", "user",
"note", "opened", "config", "problem"}]}]}.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repos, err := openRepos(cmd.Context(), o)
			if err != nil {
				return err
			}
			out := keyListJSON{Repos: []keyRepoJSON{}}
			for _, r := range repos {
				keys, err := r.Keys(cmd.Context())
				if err != nil {
					return err
				}
				kr := keyRepoJSON{Repo: r.String(), Keys: []keyJSON{}}
				for _, k := range keys {
					kr.Keys = append(kr.Keys, keyJSON{ID: k.ID, Created: k.Created, Host: k.Host, User: k.User,
						Note: k.Note, Opened: k.Opened, Config: k.InConfig, Problem: k.Problem})
				}
				out.Repos = append(out.Repos, kr)
			}
			if o.JSON {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(out)
			}
			printKeys(cmd.OutOrStdout(), out)
			return nil
		},
	}
}

func printKeys(w io.Writer, out keyListJSON) {
	orDash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for i, kr := range out.Repos {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s: %d key(s)\n", kr.Repo, len(kr.Keys))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tCREATED\tHOST\tUSER\tFLAGS\tNOTE")
		for _, k := range kr.Keys {
			var flags []string
			if k.Opened {
				flags = append(flags, "opened")
			}
			if k.Config {
				flags = append(flags, "config")
			}
			if k.Problem != "" {
				flags = append(flags, "UNUSABLE")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", k.ID, k.Created.UTC().Format("2006-01-02 15:04:05Z"),
				orDash(k.Host), orDash(k.User), orDash(strings.Join(flags, ",")), orDash(k.Note))
		}
		tw.Flush()
		for _, k := range kr.Keys {
			if k.Problem != "" {
				fmt.Fprintf(w, "key %s: %s\n", k.ID, k.Problem)
			}
		}
	}
}

func newKeyAddCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "add",
		Example: `  pgward key add --passphrase-file /etc/pgward/passphrase --new-passphrase-file /root/new-passphrase --note "ops team"`,
		Short:   "Add a passphrase to every repository",
		Long: `Add a key to every --repo: the master key wrapped under a new passphrase, which
from then on opens the repository as well as the existing ones. The new key is
read back and opened with the new passphrase before the command reports it;
nothing else changes. A passphrase that already opens a key is refused.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repos, err := openRepos(cmd.Context(), o)
			if err != nil {
				return err
			}
			p, err := newPassphrase(o, "key add")
			if err != nil {
				return err
			}
			for _, r := range repos {
				k, err := r.AddKey(cmd.Context(), repo.NewKey{Passphrase: p, Note: o.KeyNote})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "added key %s to %s\n", k.ID, r)
			}
			return nil
		},
	}
}

func newKeyRemoveCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "remove ID...",
		Example: `  pgward key remove 3f2a9c01 --passphrase-file /etc/pgward/passphrase`,
		Short:   "Remove keys",
		Long: `Remove the keys with these IDs (or unique prefixes of 4 digits or more, as key
list shows them) from the repository that has each: their passphrases no longer
open it. The last key of a repository cannot be removed, and a key is removed
only while another sound key remains. The key the passphrase in use opened can
be removed too (the command says so): the repository then opens only with the
others. When the config holds the removed key, the config is first replaced by
one holding another key (the one that opened, else the newest).`,
		Args: minArgs("key ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			repos, err := openRepos(ctx, o)
			if err != nil {
				return err
			}
			owners, err := keyOwners(ctx, repos, args)
			if err != nil {
				return err
			}
			for i, id := range args {
				r := owners[i]
				res, err := r.RemoveKey(ctx, id)
				if err != nil {
					return err
				}
				msg := fmt.Sprintf("removed key %s from %s", res.ID, r)
				if res.WasOpened {
					msg += ", the key the given passphrase opened: that passphrase no longer opens it"
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s; it opens with key(s) %s\n", msg, strings.Join(res.Remaining, ", "))
			}
			return nil
		},
	}
}

// keyOwners finds, before anything is removed, the repository that holds each
// key named.
func keyOwners(ctx context.Context, repos []*repo.Repo, ids []string) ([]*repo.Repo, error) {
	type held struct {
		r  *repo.Repo
		id string
	}
	var all []held
	for _, r := range repos {
		keys, err := r.Keys(ctx)
		if err != nil {
			return nil, err
		}
		for _, k := range keys {
			all = append(all, held{r, k.ID})
		}
	}
	owners := make([]*repo.Repo, len(ids))
	for i, id := range ids {
		want := strings.ToLower(strings.TrimPrefix(id, "keys/"))
		var match []held
		for _, h := range all {
			if h.id == want || (len(want) >= 4 && strings.HasPrefix(h.id, want)) {
				match = append(match, h)
			}
		}
		switch {
		case len(match) == 0:
			return nil, fmt.Errorf("key remove: no repository has a key %q; 'pgward key list' shows the keys", id)
		case len(match) > 1:
			return nil, fmt.Errorf("key remove: %q names %d keys; give more of the ID", id, len(match))
		}
		owners[i] = match[0].r
	}
	return owners, nil
}

func newKeyPasswdCmd(o *config.Options) *cobra.Command {
	return &cobra.Command{
		Use:     "passwd",
		Example: `  pgward key passwd --passphrase-file /etc/pgward/passphrase --new-passphrase-file /root/new-passphrase`,
		Short:   "Replace the passphrase in use with a new one",
		Long: `Replace, in every --repo, the key the given passphrase opened with a key under a
new passphrase: the new key is added (with the old key's note unless --note is
given), then the old one removed. Other keys stay. If the command stops between
the two steps both passphrases open the repository; it says which key to remove.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repos, err := openRepos(cmd.Context(), o)
			if err != nil {
				return err
			}
			p, err := newPassphrase(o, "key passwd")
			if err != nil {
				return err
			}
			for _, r := range repos {
				added, removed, err := r.ChangePassphrase(cmd.Context(), repo.NewKey{Passphrase: p, Note: o.KeyNote})
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "changed the passphrase of %s: key %s replaces key %s\n", r, added.ID, removed.ID)
			}
			return nil
		},
	}
}

// newPassphrase reads the new passphrase of key add and key passwd: from its
// file or PGWARD_NEW_PASSPHRASE, else typed twice on the terminal (not echoed).
func newPassphrase(o *config.Options, command string) ([]byte, error) {
	if src := o.NewPassphraseFunc(); src != nil {
		p, err := src()
		if err != nil {
			return nil, fmt.Errorf("%s: reading the new passphrase: %w", command, err)
		}
		if len(p) == 0 {
			return nil, fmt.Errorf("%s: the new passphrase is empty", command)
		}
		return p, nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return nil, fmt.Errorf("%s needs the new passphrase: give --new-passphrase-file FILE or PGWARD_NEW_PASSPHRASE, or run it on a terminal to type it", command)
	}
	ask := func(prompt string) ([]byte, error) {
		fmt.Fprint(os.Stderr, prompt)
		p, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		return p, err
	}
	p, err := ask("New passphrase: ")
	if err != nil {
		return nil, fmt.Errorf("%s: reading the new passphrase: %w", command, err)
	}
	if len(p) == 0 {
		return nil, errors.New(command + ": the new passphrase is empty; nothing was changed")
	}
	again, err := ask("The new passphrase again: ")
	if err != nil {
		return nil, fmt.Errorf("%s: reading the new passphrase: %w", command, err)
	}
	if !bytes.Equal(p, again) {
		return nil, errors.New(command + ": the two passphrases typed differ; nothing was changed")
	}
	return p, nil
}
