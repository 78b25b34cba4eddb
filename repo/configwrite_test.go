package repo_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/storagetest"
)

// replaceObject stands for a hand edit or an older writer.
func replaceObject(t *testing.T, mem *storagetest.Memory, name string, b []byte) {
	t.Helper()
	if err := mem.Delete(t.Context(), name); err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(t.Context(), name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

// A repository whose config lives in config-2 exists: init refuses it.
func TestInitSeesConfig2(t *testing.T) {
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "a", 2)
	addKey(t, r, "b", "")
	if _, err := r.RemoveKey(t.Context(), r.OpenedKey()); err != nil {
		t.Fatal(err)
	}
	if objs := objects(t, mem); objs["config"] != nil || objs["config-2"] == nil {
		t.Fatal("the config did not move to config-2")
	}
	if _, err := repo.Init(t.Context(), mem, repo.InitOptions{}); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("init over config-2: %v", err)
	}
}

// An upgrade interrupted between its two steps leaves config (format 1) and
// config-2 (format 2); the next key command settles it as the upgrade meant.
func TestKeyCommandFinishesInterruptedUpgrade(t *testing.T) {
	mem := storagetest.NewMemory()
	initKeys(t, mem, "a", 1)
	old := objects(t, mem)["config"]
	if _, _, err := repo.Upgrade(t.Context(), mem, pass("a")); err != nil {
		t.Fatal(err)
	}
	if err := mem.Put(t.Context(), "config", bytes.NewReader(old), int64(len(old))); err != nil {
		t.Fatal(err)
	}
	r := openWith(t, mem, "a")
	if r.Config().Format != 2 {
		t.Fatalf("config-2 is not the one read: format %d", r.Config().Format)
	}
	addKey(t, r, "b", "")
	if objs := objects(t, mem); objs["config"] != nil {
		t.Fatal("the format-1 config left by the interrupted upgrade is still there")
	}
	if openWith(t, mem, "b").Config().Format != 2 {
		t.Fatal("the upgrade was undone")
	}
}

// A config with a setting this pgward does not know is not rewritten (the
// setting would be lost); nothing changes.
func TestRewriteKeepsUnknownSettings(t *testing.T) {
	mem := storagetest.NewMemory()
	r := initKeys(t, mem, "a", 2)
	addKey(t, r, "b", "")
	cfg := objects(t, mem)["config"]
	newer := bytes.Replace(cfg, []byte(`"format": 2,`), []byte(`"format": 2, "future_setting": true,`), 1)
	replaceObject(t, mem, "config", newer)
	before := objects(t, mem)
	ra := openWith(t, mem, "a")
	if _, err := ra.RemoveKey(t.Context(), ra.OpenedKey()); err == nil || !strings.Contains(err.Error(), "does not know") {
		t.Fatalf("rewriting a config with an unknown setting: %v", err)
	}
	after := objects(t, mem)
	for name, b := range before {
		if !repo.IsLockObject(name) && !bytes.Equal(after[name], b) {
			t.Errorf("%s changed", name)
		}
	}
	openWith(t, mem, "a")
}
