package info_test

import (
	"testing"

	"github.com/pgward/pgward/engine/info"
	"github.com/pgward/pgward/engine/verify"
	"github.com/pgward/pgward/repo"
	"github.com/pgward/pgward/repo/repotest"
)

// The sizes add up: what only one backup needs is what the repository no longer needs once
// that backup's manifest is gone; pins, WAL and the last verify run show.
func TestGather(t *testing.T) {
	r, _, _ := repotest.NewRepo(t)
	ctx := t.Context()
	w := &repotest.Writer{T: t, R: r}
	var ids []string
	for v := range 4 {
		ids = append(ids, w.Backup(repotest.Files(v)).ID)
	}
	if _, err := r.PinBackup(ctx, "main", ids[3], "keep me"); err != nil {
		t.Fatal(err)
	}
	if _, err := verify.Run(ctx, r, verify.Options{Cluster: "main", Mode: verify.ReadData}); err != nil {
		t.Fatal(err)
	}
	rep, err := info.Gather(ctx, r, "")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Format != 2 || rep.Encryption != "none" || len(rep.Clusters) != 1 || rep.UnreferencedBytes != 0 {
		t.Fatalf("report %+v", rep)
	}
	if rep.LastVerify == nil || !rep.LastVerify.OK || rep.LastVerify.Mode != "read-data" {
		t.Errorf("last verify %+v", rep.LastVerify)
	}
	c := rep.Clusters[0]
	if len(c.Backups) != 4 || c.WALFiles != 8 || len(c.Windows) == 0 {
		t.Fatalf("cluster %+v", c)
	}
	var sumUnique int64
	for _, b := range c.Backups {
		t.Logf("backup %s: db %d, stored %d, referenced %d, unique %d, pinned %v %q", b.ID, b.DBBytes, b.StoredBytes, b.ReferencedBytes, b.UniqueBytes, b.Pinned, b.PinNote)
		if b.ReferencedBytes <= 0 || b.UniqueBytes <= 0 || b.UniqueBytes > b.ReferencedBytes || b.ReferencedBytes > c.ReferencedBytes {
			t.Errorf("backup %s: referenced %d, unique %d, cluster %d", b.ID, b.ReferencedBytes, b.UniqueBytes, c.ReferencedBytes)
		}
		sumUnique += b.UniqueBytes
	}
	if !c.Backups[3].Pinned || c.Backups[3].PinNote != "keep me" || c.Backups[0].Pinned {
		t.Errorf("pins: %+v", c.Backups)
	}
	if sumUnique != c.UniqueBytes || c.UniqueBytes >= c.ReferencedBytes || c.ReferencedBytes > rep.ContentBytes+4*1024 || c.DedupRatio <= 1 {
		t.Errorf("cluster: unique %d (sum %d), referenced %d, content %d, dedup %.2f", c.UniqueBytes, sumUnique, c.ReferencedBytes, rep.ContentBytes, c.DedupRatio)
	}

	// Expire the first backup by hand: what only it needed, its manifest aside, is now
	// unreferenced.
	manifest, err := r.Storage().Stat(ctx, repo.ManifestObjectName("main", ids[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteManifest(ctx, "main", ids[0]); err != nil {
		t.Fatal(err)
	}
	after, err := info.Gather(ctx, r, "main")
	if err != nil {
		t.Fatal(err)
	}
	if want := c.Backups[0].UniqueBytes - manifest.Size; after.UnreferencedBytes != want {
		t.Errorf("after the first backup went: %d bytes unreferenced, it alone needed %d", after.UnreferencedBytes, want)
	}
	if _, err := info.Gather(ctx, r, "other"); err == nil {
		t.Error("info of a cluster that is not there succeeded")
	}
}
