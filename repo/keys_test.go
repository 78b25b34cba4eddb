package repo_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pgward/pgward/crypt"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

// fastKDF is scrypt at its smallest accepted cost, so tests run many of them.
func fastKDF(t testing.TB) *crypt.KDFParams {
	t.Helper()
	kdf, err := crypt.DefaultKDFParams()
	if err != nil {
		t.Fatal(err)
	}
	kdf.N, kdf.R = 1<<14, 1
	return &kdf
}

func pass(s string) func() ([]byte, error) {
	return func() ([]byte, error) { return []byte(s), nil }
}

// initKeys makes an encrypted repository in memory whose first key has passphrase p.
func initKeys(t testing.TB, mem *storagetest.Memory, p string, format int) *repo.Repo {
	t.Helper()
	r, err := repo.Init(t.Context(), mem, repo.InitOptions{Passphrase: []byte(p), KDF: fastKDF(t), Format: format})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func openWith(t testing.TB, st repo.Storage, p string) *repo.Repo {
	t.Helper()
	r, err := repo.Open(t.Context(), st, pass(p))
	if err != nil {
		t.Fatalf("open with %q: %v", p, err)
	}
	return r
}

func addKey(t testing.TB, r *repo.Repo, p, note string) repo.KeyInfo {
	t.Helper()
	k, err := r.AddKey(t.Context(), repo.NewKey{Passphrase: []byte(p), Note: note, KDF: fastKDF(t)})
	if err != nil {
		t.Fatalf("add %q: %v", p, err)
	}
	return k
}

// sameMaster tells whether two open repositories have the same master key.
func sameMaster(a, b *repo.Repo) bool {
	return a.ContentHash([]byte("x")) == b.ContentHash([]byte("x"))
}

// objects returns every object of mem with its bytes.
func objects(t testing.TB, mem *storagetest.Memory) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	err := mem.List(context.Background(), "", func(o repo.ObjectInfo) error {
		rc, err := mem.Get(context.Background(), o.Name)
		if err != nil {
			return err
		}
		defer rc.Close()
		out[o.Name], err = io.ReadAll(rc)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// configKey returns the wrapped key the active config holds, as an older
// pgward reads it: config-2, else config, field "key".
func configKey(t testing.TB, mem *storagetest.Memory) (string, crypt.WrappedKey) {
	t.Helper()
	objs := objects(t, mem)
	name := "config-2"
	if objs[name] == nil {
		name = "config"
	}
	var c struct{ Key crypt.WrappedKey }
	if err := json.Unmarshal(objs[name], &c); err != nil {
		t.Fatal(err)
	}
	return name, c.Key
}

// holdsWrapped reports whether any object of mem contains the wrapped key's ciphertext.
func holdsWrapped(t testing.TB, mem *storagetest.Memory, w crypt.WrappedKey) []string {
	t.Helper()
	needle := []byte(base64.StdEncoding.EncodeToString(w.Ciphertext))
	var in []string
	for name, b := range objects(t, mem) {
		if bytes.Contains(b, needle) {
			in = append(in, name)
		}
	}
	return in
}

// The life of a repository's keys: a second key, removal of the first (the one
// that opened), the old passphrase refused in one sentence, the last key kept.
func TestKeyAddRemove(t *testing.T) {
	ctx := t.Context()
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "first", 2)
	_, first := configKey(t, mem)
	cfgBefore := objects(t, mem)["config"]

	b := addKey(t, r, "second", "for the DR site")
	if b.Note != "for the DR site" || b.Host == "" || b.Created.IsZero() {
		t.Errorf("new key: %+v", b)
	}
	if !bytes.Equal(objects(t, mem)["config"], cfgBefore) {
		t.Error("key add changed the config: older pgward releases must still open it with the first passphrase")
	}
	ra, rb := openWith(t, mem, "first"), openWith(t, mem, "second")
	if !sameMaster(ra, rb) || !sameMaster(ra, r) {
		t.Fatal("the two passphrases open different master keys")
	}
	if rb.OpenedKey() != b.ID || ra.OpenedKey() == b.ID || ra.OpenedKey() == "" {
		t.Fatalf("opened keys: first %s, second %s, added %s", ra.OpenedKey(), rb.OpenedKey(), b.ID)
	}
	keys, err := rb.Keys(ctx)
	if err != nil || len(keys) != 2 {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	if keys[0].ID != ra.OpenedKey() || !keys[0].InConfig || keys[0].Opened || keys[1].ID != b.ID || !keys[1].Opened || keys[1].InConfig {
		t.Fatalf("keys as the second passphrase sees them: %+v", keys)
	}
	if _, err := ra.AddKey(ctx, repo.NewKey{Passphrase: []byte("second"), KDF: fastKDF(t)}); err == nil || !strings.Contains(err.Error(), "already opens key "+b.ID) {
		t.Fatalf("adding a passphrase that already opens a key: %v", err)
	}
	if _, err := ra.AddKey(ctx, repo.NewKey{Passphrase: []byte{}, KDF: fastKDF(t)}); err == nil {
		t.Fatal("an empty passphrase was added")
	}

	// Remove the first key, using it: allowed, since the second remains.
	res, err := ra.RemoveKey(ctx, ra.OpenedKey()[:6])
	if err != nil {
		t.Fatal(err)
	}
	if res.ID != ra.OpenedKey() || !res.WasOpened || res.ConfigKey != b.ID || len(res.Remaining) != 1 || res.Remaining[0] != b.ID {
		t.Fatalf("removal: %+v", res)
	}
	_, err = repo.Open(ctx, mem, pass("first"))
	if !errors.Is(err, repo.ErrWrongPassphrase) || strings.Count(err.Error(), "wrong passphrase") != 1 || strings.Contains(err.Error(), "\n") {
		t.Fatalf("the removed passphrase: %v", err)
	}
	if names := holdsWrapped(t, mem, first); len(names) > 0 {
		t.Fatalf("the removed key is still stored in %v", names)
	}
	name, w := configKey(t, mem)
	if m, err := crypt.UnwrapKey(w, []byte("second")); err != nil || name != "config-2" {
		t.Fatalf("an older pgward reading %s: %v", name, err)
	} else if rc := openWith(t, mem, "second"); !sameMaster(rc, r) || len(m) != crypt.KeySize {
		t.Fatal("the config's key is not the master key")
	}
	if _, err := rb.RemoveKey(ctx, b.ID); err == nil || !strings.Contains(err.Error(), "last key") {
		t.Fatalf("removing the last key: %v", err)
	}
	if _, err := rb.RemoveKey(ctx, "ffff"); err == nil || !strings.Contains(err.Error(), "has no key") {
		t.Fatalf("removing an unknown key: %v", err)
	}
	openWith(t, mem, "second")
}

// passwd replaces the key that opened, keeping its note; the other keys stay.
func TestKeyPasswd(t *testing.T) {
	ctx := t.Context()
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "old", 2)
	other := addKey(t, r, "other", "")
	rn := openWith(t, mem, "other")
	mid := addKey(t, rn, "middle", "backup operator")

	rm := openWith(t, mem, "middle")
	added, removed, err := rm.ChangePassphrase(ctx, repo.NewKey{Passphrase: []byte("new"), KDF: fastKDF(t)})
	if err != nil {
		t.Fatal(err)
	}
	if removed.ID != mid.ID || !removed.WasOpened || added.Note != "backup operator" {
		t.Fatalf("passwd: added %+v, removed %+v", added, removed)
	}
	if _, err := repo.Open(ctx, mem, pass("middle")); !errors.Is(err, repo.ErrWrongPassphrase) {
		t.Fatalf("the replaced passphrase: %v", err)
	}
	for _, p := range []string{"old", "other", "new"} {
		if !sameMaster(openWith(t, mem, p), r) {
			t.Fatalf("%q opens another master key", p)
		}
	}
	// passwd of the config's key moves the config to the new key.
	ro := openWith(t, mem, "old")
	if _, _, err := ro.ChangePassphrase(ctx, repo.NewKey{Passphrase: []byte("newer"), KDF: fastKDF(t)}); err != nil {
		t.Fatal(err)
	}
	if _, w := configKey(t, mem); func() bool { _, err := crypt.UnwrapKey(w, []byte("newer")); return err != nil }() {
		t.Fatal("the config does not hold the key that replaced its key")
	}
	keys, err := openWith(t, mem, "newer").Keys(ctx)
	if err != nil || len(keys) != 3 {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	ids := map[string]bool{}
	for _, k := range keys {
		ids[k.ID] = true
		if k.Problem != "" {
			t.Errorf("key %s: %s", k.ID, k.Problem)
		}
	}
	if !ids[other.ID] || !ids[added.ID] {
		t.Fatalf("keys after two passwd: %+v", keys)
	}
}

func TestKeyUnencrypted(t *testing.T) {
	mem := storagetest.NewMemory()
	r, err := repo.Init(t.Context(), mem, repo.InitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Keys(t.Context()); !errors.Is(err, repo.ErrNotEncrypted) {
		t.Fatalf("list: %v", err)
	}
	if _, err := r.AddKey(t.Context(), repo.NewKey{Passphrase: []byte("x")}); !errors.Is(err, repo.ErrNotEncrypted) {
		t.Fatalf("add: %v", err)
	}
	if len(objects(t, mem)) != 1 {
		t.Fatalf("a refused key command wrote: %v", objects(t, mem))
	}
}

// A key object whose fields were edited, or that comes from another
// repository, is reported, never trusted, and never counted as the key that
// keeps a repository openable.
func TestKeyObjectTampered(t *testing.T) {
	ctx := t.Context()
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "a", 2)
	b := addKey(t, r, "b", "original note")
	name := "keys/" + b.ID
	raw := objects(t, mem)[name]
	edited := bytes.Replace(raw, []byte("original note"), []byte("edited  note!"), 1)
	if err := mem.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(ctx, name, bytes.NewReader(edited), int64(len(edited))); err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Open(ctx, mem, pass("b")); !errors.Is(err, repo.ErrCorrupt) || !strings.Contains(err.Error(), "MAC") {
		t.Fatalf("opening with an edited key object: %v", err)
	}
	ra := openWith(t, mem, "a")
	keys, err := ra.Keys(ctx)
	if err != nil || len(keys) != 2 || !strings.Contains(keys[1].Problem, "MAC") {
		t.Fatalf("keys: %+v, %v", keys, err)
	}
	if _, err := ra.RemoveKey(ctx, ra.OpenedKey()); err == nil || !strings.Contains(err.Error(), "no other key") {
		t.Fatalf("removing the only sound key: %v", err)
	}
	// The edited object can be removed; then a fresh key is added.
	if _, err := ra.RemoveKey(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	addKey(t, ra, "c", "")

	// A key object of another repository.
	other := storagetest.NewMemory()
	ro := initKeys(t, other, "z", 2)
	z := addKey(t, ro, "zz", "")
	foreign := objects(t, other)["keys/"+z.ID]
	if err := mem.Put(ctx, "keys/"+z.ID, bytes.NewReader(foreign), int64(len(foreign))); err != nil {
		t.Fatal(err)
	}
	_, err = repo.Open(ctx, mem, pass("zz"))
	if !errors.Is(err, repo.ErrWrongPassphrase) || !strings.Contains(err.Error(), "belongs to repository") {
		t.Fatalf("opening with another repository's key: %v", err)
	}
	keys, _ = openWith(t, mem, "c").Keys(ctx)
	found := false
	for _, k := range keys {
		if k.ID == z.ID {
			found = strings.Contains(k.Problem, "belongs to repository")
		}
	}
	if !found {
		t.Fatalf("the foreign key object is not reported: %+v", keys)
	}
}

// A format-1 repository keeps its config under the name releases before
// format 2 read, whatever happens to its keys.
func TestKeysFormat1(t *testing.T) {
	ctx := t.Context()
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "a", 1)
	addKey(t, r, "b", "")
	// Remove the config's key twice over: a, then (added back) b.
	for _, step := range []struct{ remove, keep string }{{"a", "b"}, {"b", "a"}} {
		ro := openWith(t, mem, step.remove)
		if _, err := ro.RemoveKey(ctx, ro.OpenedKey()); err != nil {
			t.Fatal(err)
		}
		name, w := configKey(t, mem)
		if name != "config" || objects(t, mem)["config-2"] != nil {
			t.Fatalf("the format-1 config moved to %s", name)
		}
		if _, err := crypt.UnwrapKey(w, []byte(step.keep)); err != nil {
			t.Fatalf("the config does not hold the remaining key: %v", err)
		}
		addKey(t, openWith(t, mem, step.keep), step.remove, "")
	}
	if got := openWith(t, mem, "a").Config().Format; got != 1 {
		t.Fatalf("format %d", got)
	}
}

func cloneMemory(t testing.TB, src *storagetest.Memory) *storagetest.Memory {
	t.Helper()
	dst := storagetest.NewMemory()
	for name, b := range objects(t, src) {
		if err := dst.Put(context.Background(), name, bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// deadLocks removes the locks a crashed process left: the next process would
// find them dead (same host, no such process), but in a test the process is
// still this one.
func deadLocks(t testing.TB, mem *storagetest.Memory) {
	t.Helper()
	for name := range objects(t, mem) {
		if repo.IsLockObject(name) {
			if err := mem.Delete(t.Context(), name); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// opens reports whether passphrase p opens the repository.
func opens(t testing.TB, st repo.Storage, p string) (*repo.Repo, bool) {
	t.Helper()
	r, err := repo.Open(t.Context(), st, pass(p))
	if err != nil && !errors.Is(err, repo.ErrWrongPassphrase) {
		t.Fatalf("open with %q: %v", p, err)
	}
	return r, err == nil
}

// crashCase is a key command and what must hold whatever step it dies at.
type crashCase struct {
	name string
	// setup prepares the repository in mem (with passphrase "a" first) and
	// returns the passphrase the command opens with.
	setup func(t testing.TB, mem *storagetest.Memory, r *repo.Repo) string
	run   func(r *repo.Repo) error
	// after checks the repository after a crash and finishes the job as a user
	// would; mem has no faults.
	after func(c *crashCheck)
}

// crashCheck is the repository after one crash.
type crashCheck struct {
	t      testing.TB
	mem    *storagetest.Memory
	master *repo.Repo // opened before the command ran
}

// mustOpen: p opens the repository, with its master key.
func (c *crashCheck) mustOpen(p string) {
	c.t.Helper()
	r, ok := opens(c.t, c.mem, p)
	if !ok {
		c.t.Fatalf("%q no longer opens the repository", p)
	}
	if !sameMaster(r, c.master) {
		c.t.Fatalf("%q opens another master key", p)
	}
}

func (c *crashCheck) mustNotOpen(p string) {
	c.t.Helper()
	if _, ok := opens(c.t, c.mem, p); ok {
		c.t.Fatalf("%q still opens the repository", p)
	}
}

func (c *crashCheck) opens(p string) bool {
	c.t.Helper()
	_, ok := opens(c.t, c.mem, p)
	return ok
}

// removeIfOpens reruns the removal of gone's key, with the passphrase with.
func (c *crashCheck) removeIfOpens(gone, with string) {
	c.t.Helper()
	rg, ok := opens(c.t, c.mem, gone)
	if !ok {
		return
	}
	if _, err := openWith(c.t, c.mem, with).RemoveKey(context.Background(), rg.OpenedKey()); err != nil {
		c.t.Fatalf("rerun of the removal: %v", err)
	}
}

// TestKeyCrashAtEveryStep stops each key command at every storage call it makes
// (a process that dies: that call and every later one fail) and checks that the
// repository still opens, with its master key, with every passphrase that must
// still work, and that finishing the job as a user would converges.
func TestKeyCrashAtEveryStep(t *testing.T) {
	ctx := context.Background()
	cases := []crashCase{
		{
			name:  "add",
			setup: func(testing.TB, *storagetest.Memory, *repo.Repo) string { return "a" },
			run: func(r *repo.Repo) error {
				_, err := r.AddKey(ctx, repo.NewKey{Passphrase: []byte("b"), KDF: fastKDF(t)})
				return err
			},
			after: func(c *crashCheck) {
				c.mustOpen("a")
				if !c.opens("b") {
					addKey(c.t, openWith(c.t, c.mem, "a"), "b", "")
				}
				c.mustOpen("b")
			},
		},
		{
			name: "remove the config's key",
			setup: func(t testing.TB, mem *storagetest.Memory, r *repo.Repo) string {
				addKey(t, r, "b", "")
				return "a"
			},
			run: func(r *repo.Repo) error {
				_, err := r.RemoveKey(ctx, r.OpenedKey())
				return err
			},
			after: func(c *crashCheck) {
				c.mustOpen("b")
				c.removeIfOpens("a", "b")
				c.mustNotOpen("a")
			},
		},
		{
			name: "remove another key",
			setup: func(t testing.TB, mem *storagetest.Memory, r *repo.Repo) string {
				addKey(t, r, "b", "")
				return "b"
			},
			run: func(r *repo.Repo) error {
				_, err := r.RemoveKey(ctx, r.OpenedKey())
				return err
			},
			after: func(c *crashCheck) {
				c.mustOpen("a")
				c.removeIfOpens("b", "a")
				c.mustNotOpen("b")
			},
		},
		{
			name:  "passwd",
			setup: func(testing.TB, *storagetest.Memory, *repo.Repo) string { return "a" },
			run: func(r *repo.Repo) error {
				_, _, err := r.ChangePassphrase(ctx, repo.NewKey{Passphrase: []byte("b"), KDF: fastKDF(t)})
				return err
			},
			after: func(c *crashCheck) {
				a, b := c.opens("a"), c.opens("b")
				switch {
				case a && b:
					c.removeIfOpens("a", "b")
				case a:
					if _, _, err := openWith(c.t, c.mem, "a").ChangePassphrase(ctx, repo.NewKey{Passphrase: []byte("b"), KDF: fastKDF(c.t)}); err != nil {
						c.t.Fatalf("rerun of passwd: %v", err)
					}
				case !b:
					c.t.Fatal("neither passphrase opens the repository")
				}
				c.mustOpen("b")
				c.mustNotOpen("a")
			},
		},
	}
	for _, cc := range cases {
		t.Run(cc.name, func(t *testing.T) {
			t.Parallel()
			// Every run starts from a copy of one prepared repository (the
			// setup's scrypt runs would be most of the cost).
			prepared := storagetest.NewMemory()
			master := initKeys(t, prepared, "a", 2)
			p := cc.setup(t, prepared, master)

			// Count the calls of an undisturbed run.
			f := storagetest.NewFaulty(cloneMemory(t, prepared))
			r := openWith(t, f, p)
			before := f.Calls("")
			if err := cc.run(r); err != nil {
				t.Fatal(err)
			}
			steps := f.Calls("") - before
			crashed := 0
			for k := range steps {
				mem := cloneMemory(t, prepared)
				f := storagetest.NewFaulty(mem)
				r := openWith(t, f, p)
				f.Set(storagetest.Fault{Err: storagetest.ErrInjected, Skip: k})
				if err := cc.run(r); err != nil {
					crashed++
				}
				deadLocks(t, mem)
				cc.after(&crashCheck{t: t, mem: mem, master: master})
			}
			t.Logf("%d storage calls, %d crash points ended the command with an error", steps, crashed)
			// The last call releases the lock: the work is done whether or not
			// it fails (a lock left behind is dead, and deadLocks removes it).
			if crashed < steps-1 {
				t.Fatalf("only %d of %d crash points failed the command", crashed, steps)
			}
		})
	}
}

// Key commands run one at a time: a second one meets the first's lock and
// changes nothing.
func TestKeyCommandsSerialized(t *testing.T) {
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "a", 2)
	held, err := r.Lock(t.Context(), ".config", "key remove")
	if err != nil {
		t.Fatal(err)
	}
	before := objects(t, mem)
	_, err = r.AddKey(t.Context(), repo.NewKey{Passphrase: []byte("b"), KDF: fastKDF(t)})
	if !errors.Is(err, repo.ErrLocked) || !strings.Contains(err.Error(), "another key command") {
		t.Fatalf("key add while another key command runs: %v", err)
	}
	if after := objects(t, mem); len(after) != len(before) {
		t.Fatalf("the refused key add wrote: %d objects, before %d", len(after), len(before))
	}
	if err := held.Unlock(t.Context()); err != nil {
		t.Fatal(err)
	}
	addKey(t, r, "b", "")
}
