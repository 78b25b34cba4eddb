// Package daemon runs pgward as a long-lived service for many clusters: scheduled backups
// (with the cluster's retention after each), scheduled incremental verifies and restore
// drills, a supervised WAL receiver per cluster, objectives (RPO, RTO, backup age, verify,
// drill) that turn /healthz unhealthy and run hooks, Prometheus metrics, a JSON status and
// a status page. Every job calls the same library function the CLI command of that name
// calls, with options resolved from the same config file ([cluster.NAME] tables).
//
// Invariants:
//   - One job at a time per cluster (never two backups of one cluster; a drill or verify
//     waits for a backup and the other way round), so two cores are not oversubscribed by
//     one cluster; clusters run independently, and one cluster's failures stay its own.
//   - A schedule missed while the daemon was down runs once at start, not once per missed
//     time: the last run is read from the repository (newest backup, last drill record,
//     last verify run).
//   - Hooks run with a bounded time; their failure is logged and never fails a job.
//   - SIGHUP reloads the config; a config that does not load is refused and the running one
//     kept. On shutdown, scheduling stops, a running job gets a grace period and is then
//     canceled (a canceled backup commits nothing), receivers upload their partial segment,
//     and Run returns nil.
package daemon
