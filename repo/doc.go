// Package repo owns the repository format: the config object and its keys
// (key objects, one per passphrase of an encrypted repository: keys.go), the
// object envelope (header, compression, encryption, content hash), the
// content-addressed chunk store, per-cluster identities, backup manifests and
// locks. It stores everything through the small Storage interface, so the same
// format lives on a local disk or in S3. docs/repository-format.md is the
// specification; this package is its one implementation.
//
// Storage is the whole contract with a backend (repo/storage.go): every ability
// the format uses is one of its methods, never an optional interface found by
// type assertion. Stat and List describe objects with ObjectInfo (name, size,
// modification time); PutDeferred and SyncDeferred let local storage batch
// directory fsyncs. A wrapper (repo/retry, a metrics or test wrapper) forwards
// every method, so stacking one cannot change what is durable when; As reaches
// a backend's own identity, such as a local directory, through wrappers.
//
// Invariants kept here:
//   - Write once. Every Put is create-only (Storage.Put fails with ErrExists);
//     nothing in a repository is ever modified in place, so a reader never sees a
//     half-updated object.
//   - Commit last. A backup is listed only when its manifest exists, and the
//     manifest is written after every chunk it references is durable (the engine
//     calls PutManifest last; chunks are stored with PutDeferred, and
//     PutManifest calls SyncDeferred before it writes). A crash leaves
//     unreferenced chunks, never a listed backup with missing data.
//   - Always a key. An encrypted repository always keeps a key known to hold
//     its master key: a key is removed only while another sound one remains,
//     and the config, which holds a copy of one key, is replaced by moving it
//     between config and config-2, so a reader always finds a whole config
//     (configwrite.go, keyops.go).
//   - Never trust storage. Every object read goes through Open, which checks the
//     header, the GCM tag (encrypted repositories) and the keyed content hash
//     (always) before returning a byte; callers never see unverified plaintext.
package repo
