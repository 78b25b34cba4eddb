package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgward/pgward/test/azuritetest"
	"github.com/pgward/pgward/test/gcstest"
	"github.com/pgward/pgward/test/pgtest"
	"github.com/pgward/pgward/test/sshtest"
)

// remoteMajor is the PostgreSQL major of the remote repository tests: what they prove is
// about the repositories, not the server version.
const remoteMajor = 15

// remoteKind is one kind of remote repository under test, on its own server.
type remoteKind struct {
	name string
	// repo names a fresh repository location on the server.
	repo func(t *testing.T) string
	// flags are the options pgward needs to reach the server.
	flags []string
	// objects lists what the server holds for a repository location (nil when its
	// container, bucket or directory does not exist), with a client of its own.
	objects func(t *testing.T, repo string) []string
	// down stops the server in the middle of whatever it does (SIGKILL, with every process
	// it started; Azurite gets SIGTERM, see servertest.Terminate); up starts it again on
	// the same port with its data.
	down func()
	up   func(t testing.TB)
	// remove deletes an object of a repository behind pgward's back.
	remove func(t *testing.T, repo, name string)
	// badInput are the ways to get this kind wrong, each with its one sentence.
	badInput func(t *testing.T, repo string) []badCase
}

// badCase is a wrong configuration: pgward run with env and args fails with want, and
// repo afterwards holds what it held before.
type badCase struct {
	name string
	env  []string
	args []string
	repo string
	want string
}

// startRemoteKinds starts an Azurite, a fake-gcs-server and an sshd, and sets the test
// process's environment for them (pgward and the PostgreSQL servers' archive and restore
// commands inherit it): hence t.Setenv, and no t.Parallel.
func startRemoteKinds(t *testing.T) (azure, gcs, sftp *remoteKind) {
	az := azuritetest.Start(t)
	gs := gcstest.Start(t)
	ssh := sshtest.Start(t)
	for _, k := range []string{"AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_SAS_TOKEN", "AZURE_CLIENT_ID",
		"GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST", "SSH_AUTH_SOCK"} {
		t.Setenv(k, "")
	}
	t.Setenv("AZURE_STORAGE_ACCOUNT", az.Account)
	t.Setenv("AZURE_STORAGE_KEY", az.Key)
	t.Setenv("GOOGLE_CLOUD_PROJECT", "pgward-test")

	azure = &remoteKind{
		name:  "azure",
		repo:  func(t *testing.T) string { return "azure://" + azuritetest.ContainerName(t) + "/pg" },
		flags: []string{"--azure-endpoint", az.Endpoint},
		objects: func(t *testing.T, repo string) []string {
			container, _, _ := strings.Cut(strings.TrimPrefix(repo, "azure://"), "/")
			if !slices.Contains(az.ContainerNames(t), container) {
				return nil
			}
			return append([]string{}, az.BlobNames(t, container, "")...)
		},
		down: az.Terminate,
		up:   az.Restart,
		remove: func(t *testing.T, repo, name string) {
			container, _, _ := strings.Cut(strings.TrimPrefix(repo, "azure://"), "/")
			az.DeleteBlob(t, container, name)
		},
	}
	azure.badInput = func(t *testing.T, repo string) []badCase {
		container, _, _ := strings.Cut(strings.TrimPrefix(repo, "azure://"), "/")
		return []badCase{
			{"WrongKey", []string{"AZURE_STORAGE_KEY=" + otherAzureKey(az.Key)}, nil, repo,
				"access denied to container " + container + ": check the credentials"},
			{"MissingContainer", nil, nil, "azure://no-such-container/pg",
				"container no-such-container does not exist (create it, or run pgward init which creates it)"},
			{"NoCredentials", []string{"AZURE_STORAGE_KEY="}, nil, repo,
				"no Azure credentials for the plain-http endpoint"},
		}
	}

	gcs = &remoteKind{
		name:  "gcs",
		repo:  func(t *testing.T) string { return "gs://" + gcstest.BucketName(t) + "/pg" },
		flags: []string{"--gcs-endpoint", gs.Endpoint},
		objects: func(t *testing.T, repo string) []string {
			bucket, _, _ := strings.Cut(strings.TrimPrefix(repo, "gs://"), "/")
			if !slices.Contains(gs.BucketNames(t), bucket) {
				return nil
			}
			return append([]string{}, gs.ObjectNames(t, bucket, "")...)
		},
		down: gs.Kill,
		up:   gs.Restart,
	}
	tokens := gcstest.StartTokenServer(t)
	gcs.badInput = func(t *testing.T, repo string) []badCase {
		return []badCase{
			{"MissingBucket", nil, nil, "gs://no-such-bucket/pg",
				"bucket no-such-bucket does not exist (create it, or run pgward init which creates it)"},
			// Credentials are only sent over https, and asked for before any storage
			// request: a key file that cannot sign, and a valid key that is not the
			// account's, refused by the token endpoint.
			{"BrokenCredentials", []string{"GOOGLE_APPLICATION_CREDENTIALS=" + gcstest.BrokenServiceAccount(t)},
				[]string{"--gcs-endpoint", "https://" + gs.Addr + "/storage/v1/"}, repo,
				"no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS"},
			{"WrongKey", []string{"GOOGLE_APPLICATION_CREDENTIALS=" + tokens.WrongKeyFile(t)},
				[]string{"--gcs-endpoint", "https://" + gs.Addr + "/storage/v1/"}, repo,
				"no usable Google credentials: set GOOGLE_APPLICATION_CREDENTIALS"},
		}
	}

	// The archive and restore commands run as the postgres OS user: it gets its own copy
	// of the key and known_hosts.
	keys := pgtest.TempDir(t)
	keyFile, knownHosts := filepath.Join(keys, "id_ed25519"), filepath.Join(keys, "known_hosts")
	copyFile(t, ssh.KeyFile, keyFile)
	copyFile(t, ssh.KnownHosts, knownHosts)
	pgtest.ChownToPostgres(t, keys)
	n := 0
	sftp = &remoteKind{
		name: "sftp",
		repo: func(t *testing.T) string {
			n++
			return ssh.URL(filepath.Join(ssh.Dir, fmt.Sprintf("r%d", n), "pg"))
		},
		flags: []string{"--sftp-identity-file", keyFile, "--sftp-known-hosts", knownHosts},
		objects: func(t *testing.T, repo string) []string {
			return fileNames(t, repo[strings.Index(repo[len("sftp://"):], "/")+len("sftp://"):])
		},
		down: ssh.Kill,
		up:   ssh.Restart,
	}
	sftp.badInput = func(t *testing.T, repo string) []badCase {
		empty := filepath.Join(t.TempDir(), "known_hosts")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		other := filepath.Join(t.TempDir(), "other_key")
		sshtest.NewKey(t, other)
		missing := filepath.Join(ssh.Dir, "no-such-dir")
		return []badCase{
			{"UnknownHostKey", nil, []string{"--sftp-known-hosts", empty}, repo,
				"the host key of 127.0.0.1 is unknown (not in " + empty + ")"},
			{"WrongKey", nil, []string{"--sftp-identity-file", other}, repo,
				"the server refused every key offered for user " + ssh.User},
			{"MissingDirectory", nil, nil, ssh.URL(missing),
				"repository directory " + missing + " does not exist on 127.0.0.1 (create it, or run pgward init which creates it)"},
		}
	}
	return azure, gcs, sftp
}

// otherAzureKey returns a valid account key that is not key.
func otherAzureKey(key string) string {
	if strings.HasPrefix(key, "AAAA") {
		return "BBBB" + key[4:]
	}
	return "AAAA" + key[4:]
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// fileNames lists the files below dir, relative to it; nil when dir does not exist.
func fileNames(t *testing.T, dir string) []string {
	t.Helper()
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	names := []string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestRemoteRepos proves the Azure, GCS and SFTP repositories end to end, against Azurite,
// fake-gcs-server and OpenSSH's sshd on 127.0.0.1, with one PostgreSQL cluster whose
// archive_command pushes every WAL segment into a local, an Azure, a GCS and an SFTP
// repository at once:
//
//   - every kind takes a backup while its server is stopped and started again in the middle:
//     the backup is retried to completion, or fails with the reason and is not listed;
//   - every kind alone restores the cluster to a point in time, its restore_command
//     fetching WAL from it with archive-get, and the rows match the source's at that time;
//   - local + Azure + GCS together restore with the local repository gone and a chunk
//     missing from Azure: the restore skips the first, reads that chunk from GCS, and the
//     rows match;
//   - a wrong key, a missing container, bucket or directory, an unknown host key: one
//     sentence each, and nothing written.
func TestRemoteRepos(t *testing.T) {
	azure, gcs, sftp := startRemoteKinds(t)
	kinds := []*remoteKind{azure, gcs, sftp}
	work := pgtest.TempDir(t)
	localRepo := filepath.Join(work, "repo-local")
	repos := map[*remoteKind]string{}
	var all, flags []string
	for _, k := range kinds {
		repos[k] = k.repo(t)
		all = append(all, "--repo", repos[k])
		flags = append(flags, k.flags...)
	}
	all = append([]string{"--repo", localRepo}, all...)
	pgwardPG(t, nil, argv([]string{"init"}, all, flags)...)

	spool := filepath.Join(work, "spool")
	settings := archiveSettings(localRepo, spool)
	settings["archive_command"] = fmt.Sprintf("%s archive-push %s %s --spool-path %s %%p",
		pgwardBin, strings.Join(all, " "), strings.Join(flags, " "), spool)
	src := pgtest.Start(t, remoteMajor, pgtest.Options{Settings: settings})
	src.Exec(t, "postgres", eventsTable)
	src.Pgbench(t, "postgres", "-i", "-q", "-s", "1")
	out := pgwardPG(t, nil, argv([]string{"backup", "--conn", src.ConnString("postgres"), "--checkpoint", "fast"}, all, flags)...).stdout
	first := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	// A chunk of the first backup, which every repository holds.
	var chunk string
	for _, n := range azure.objects(t, repos[azure]) {
		if strings.HasPrefix(n, "pg/chunks/") {
			chunk = n
		}
	}

	for _, k := range kinds {
		t.Run("ServerDown/"+k.name, func(t *testing.T) { testServerDownMidBackup(t, k, src, repos[k]) })
	}

	insertRows(t, src, 1, 5)
	src.Pgbench(t, "postgres", "-n", "-t", "200")
	want := pgtest.Checksums(t, src)
	at := markTime(t, src)
	insertRows(t, src, 6, 10)
	switchAndWait(t, src)

	for _, k := range kinds {
		t.Run("PITR/"+k.name, func(t *testing.T) {
			target := filepath.Join(work, "pitr-"+k.name)
			mustPgward(t, nil, argv([]string{"restore", "--pgdata", target, "--target-time", at, "--repo", repos[k]}, k.flags)...)
			conf, err := os.ReadFile(filepath.Join(target, "postgresql.auto.conf"))
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range append([]string{"--repo " + repos[k]}, k.flags[0]+"="+k.flags[1]) {
				if !strings.Contains(string(conf), w) {
					t.Errorf("restore_command lacks %q:\n%s", w, conf)
				}
			}
			dst := pgtest.StartDataDir(t, remoteMajor, target, nil, true)
			compareSums(t, want, pgtest.Checksums(t, dst))
			if got := rowIDs(t, dst); got != "1-5" {
				t.Errorf("restore to %s from %s: rows %q, want 1-5", at, k.name, got)
			}
			dst.Stop(t, "immediate")
		})
	}

	t.Run("Fallback", func(t *testing.T) {
		testMixedFallback(t, src, work, first, chunk, localRepo, azure, repos[azure], gcs, repos[gcs])
	})

	for _, k := range kinds {
		t.Run("BadInput/"+k.name, func(t *testing.T) { testRemoteBadInput(t, k, src, repos[k]) })
	}
}

// testServerDownMidBackup: the server of k stops while a backup into repo is uploading and
// comes back 2 s later. The backup either finishes (its requests retried, the connection
// made again) or fails saying why; list shows it only when it finished. The PITR subtests
// restore from the newest backup, so a finished one is also restored.
func testServerDownMidBackup(t *testing.T, k *remoteKind, src *pgtest.Cluster, repo string) {
	// New data, so that the backup has chunks to upload; a slow server send rate keeps it
	// going while the server is away.
	src.Exec(t, "postgres", fmt.Sprintf("CREATE TABLE down_%s AS SELECT g AS id, md5(random()::text) || md5(g::text) AS v FROM generate_series(1, 100000) g", k.name))
	before := len(k.objects(t, repo))
	done := make(chan result, 1)
	go func() {
		done <- runPgward(t, true, nil, argv([]string{"backup", "--repo", repo, "--conn", src.ConnString("postgres"),
			"--checkpoint", "fast", "--max-rate", "16384", "--jobs", "2"}, k.flags)...)
	}()
	// Down once the backup has stored something new.
	deadline := time.Now().Add(time.Minute)
	for len(k.objects(t, repo)) < before+2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case r := <-done:
		t.Fatalf("the backup ended before the server could be stopped; lower --max-rate: %s", r)
	default:
	}
	k.down()
	time.Sleep(2 * time.Second)
	k.up(t)
	r := <-done
	list := listBackups(t, nil, argv([]string{"--repo", repo}, k.flags)...)
	id := strings.TrimSpace(strings.SplitN(r.stdout, "\n", 2)[0])
	ids := []string{}
	for _, b := range list {
		ids = append(ids, fmt.Sprint(b["id"]))
	}
	switch {
	case r.code == 0 && !slices.Contains(ids, id):
		t.Errorf("backup %s finished but is not listed: %v", id, ids)
	case r.code != 0 && len(ids) != 1:
		t.Errorf("the failed backup left the list at %v, want only the first backup: %s", ids, r)
	case r.code != 0:
		t.Logf("backup with the %s server restarted failed cleanly: %s", k.name, lastLine(r.stderr))
	default:
		t.Logf("backup with the %s server restarted was retried to completion: %s", k.name, lastLine(r.stderr))
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	return s[strings.LastIndex(s, "\n")+1:]
}

// testMixedFallback: local + Azure + GCS, the local repository gone and a chunk of the
// first backup missing from Azure. restore skips the local repository with a warning, reads
// that backup from Azure, and the missing chunk from GCS; its restore_command reads WAL
// from the others too. The restored cluster has every row.
func testMixedFallback(t *testing.T, src *pgtest.Cluster, work, backupID, chunk, localRepo string,
	azure *remoteKind, azureRepo string, gcs *remoteKind, gcsRepo string) {
	want := pgtest.Checksums(t, src)
	if err := os.Rename(localRepo, localRepo+"-lost"); err != nil {
		t.Fatal(err)
	}
	defer os.Rename(localRepo+"-lost", localRepo)
	if chunk == "" {
		t.Fatal("no chunk in the Azure repository")
	}
	azure.remove(t, azureRepo, chunk)

	target := filepath.Join(work, "mixed")
	r := mustPgward(t, nil, argv([]string{"restore", "--pgdata", target, "--jobs", "2", "--backup", backupID,
		"--repo", localRepo, "--repo", azureRepo, "--repo", gcsRepo}, azure.flags, gcs.flags)...)
	if !strings.Contains(r.stderr, "repository cannot be opened, reading from the others") || !strings.Contains(r.stderr, localRepo) {
		t.Errorf("restore did not say it skipped %s: %s", localRepo, r)
	}
	if !strings.Contains(r.stderr, "chunk read from another repository") || !strings.Contains(r.stderr, gcsRepo) {
		t.Errorf("restore did not say it read a chunk from %s: %s", gcsRepo, r)
	}
	dst := pgtest.StartDataDir(t, remoteMajor, target, nil, true)
	compareSums(t, want, pgtest.Checksums(t, dst))
	if got := rowIDs(t, dst); got != "1-10" {
		t.Errorf("restore from local (lost) + Azure + GCS: rows %q, want 1-10", got)
	}
	dst.Stop(t, "immediate")
}

// testRemoteBadInput: each wrong configuration of k fails list, backup and (but for a missing
// container, bucket or directory, which init creates) init at once with one line, and leaves
// the repository as it was.
func testRemoteBadInput(t *testing.T, k *remoteKind, src *pgtest.Cluster, repo string) {
	for _, bc := range k.badInput(t, repo) {
		t.Run(bc.name, func(t *testing.T) {
			before := k.objects(t, bc.repo)
			began := time.Now()
			cmds := [][]string{{"list"}, {"backup", "--conn", src.ConnString("postgres")}}
			if !strings.HasPrefix(bc.name, "Missing") {
				cmds = append(cmds, []string{"init"}) // init creates what is missing, nothing else
			}
			for _, cmd := range cmds {
				r := failPgward(t, bc.env, []string{bc.want}, argv(cmd, []string{"--repo", bc.repo}, k.flags, bc.args)...)
				if lines := strings.Count(strings.TrimSpace(r.stderr), "\n") + 1; lines != 1 {
					t.Errorf("%s: %d lines of error, want one: %s", cmd[0], lines, r)
				}
			}
			if after := k.objects(t, bc.repo); !slices.Equal(before, after) {
				t.Errorf("the repository changed: %d objects before, %d after", len(before), len(after))
			}
			if took := time.Since(began); took > 20*time.Second {
				t.Errorf("permanent errors took %s: were they retried?", took)
			}
		})
	}
}
