package main

import (
	"bufio"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
)

// run is one measurement: a line of results.tsv
// (id, rep, wall seconds, peak RSS KiB, bytes processed, bytes stored or -1).
type run struct {
	wall   float64
	rssKB  int64
	bytes  int64
	stored int64
}

// rowSpec pairs a pgward measurement with the one it is compared with.
type rowSpec struct {
	op, ours, theirs, vs string
	// target is the largest acceptable time ratio pgward/other (0: none).
	target float64
	// storedTarget: pgward must store no more than the other.
	storedTarget bool
	// rssTarget: pgward's peak RSS must stay within 256 MiB.
	rssTarget bool
}

func rowSpecs(meta map[string]string) []rowSpec {
	var rows []rowSpec
	for _, c := range []struct{ id, name string }{{"zstd3", "zstd:3"}, {"lz4", "lz4"}} {
		for _, j := range []string{"1", "2"} {
			p := "full/" + c.id + "/j" + j + "/"
			rows = append(rows, rowSpec{op: "full backup, " + c.name + ", jobs " + j, ours: p + "pgward", theirs: p + "pgbackrest", vs: "pgBackRest (process-max " + j + ")", target: 1.0, rssTarget: j == "2"})
		}
	}
	rows = append(rows,
		rowSpec{op: "full backup, zstd:3, jobs 1", ours: "full/zstd3/j1/pgward", theirs: "full/zstd3/j1/pg_basebackup", vs: "pg_basebackup -Ft -Z client-zstd:3"},
		rowSpec{op: "backup after 5% change, jobs 2", ours: "change/pgward", theirs: "change/pgbackrest-incr", vs: "pgBackRest incr", target: 1.0, storedTarget: true, rssTarget: true},
		rowSpec{op: "backup after 5% change, jobs 2", ours: "change/pgward", theirs: "change/pgbackrest-diff", vs: "pgBackRest diff"},
	)
	for _, j := range []string{"1", "2"} {
		rows = append(rows,
			rowSpec{op: "restore latest + start to consistency, jobs " + j, ours: "restore/j" + j + "/pgward", theirs: "restore/j" + j + "/pgbackrest", vs: "pgBackRest (process-max " + j + ")", target: 0.8, rssTarget: j == "2"},
			rowSpec{op: "restore latest, files only, jobs " + j, ours: "restorefiles/j" + j + "/pgward", theirs: "restorefiles/j" + j + "/pgbackrest", vs: "pgBackRest (process-max " + j + ")"},
		)
	}
	segs := meta["segments"]
	rows = append(rows,
		rowSpec{op: "archive-push, " + segs + " segments in sequence", ours: "push/pgward-ahead4", theirs: "push/pgbackrest-sync", vs: "pgBackRest", target: 1.0},
		rowSpec{op: "archive-push, " + segs + " segments, pgward --push-ahead 0", ours: "push/pgward-ahead0", theirs: "push/pgbackrest-sync", vs: "pgBackRest"},
		rowSpec{op: "archive-push, " + segs + " segments in sequence", ours: "push/pgward-ahead4", theirs: "push/pgbackrest-async", vs: "pgBackRest archive-async, process-max 2"},
		rowSpec{op: "archive-get, " + segs + " segments in sequence", ours: "get/pgward-prefetch8", theirs: "get/pgbackrest-sync", vs: "pgBackRest", target: 0.5},
		rowSpec{op: "archive-get, " + segs + " segments, pgward --prefetch 0", ours: "get/pgward-prefetch0", theirs: "get/pgbackrest-sync", vs: "pgBackRest"},
		rowSpec{op: "archive-get, " + segs + " segments in sequence", ours: "get/pgward-prefetch8", theirs: "get/pgbackrest-async", vs: "pgBackRest archive-async, process-max 2", target: 0.5},
		rowSpec{op: "PITR: restore + replay " + meta["pitr_wal_mib"] + " MiB of WAL to a target time, jobs 2", ours: "pitr/pgward", theirs: "pitr/pgbackrest-sync", vs: "pgBackRest"},
		rowSpec{op: "PITR: restore + replay " + meta["pitr_wal_mib"] + " MiB of WAL to a target time, jobs 2", ours: "pitr/pgward", theirs: "pitr/pgbackrest-async", vs: "pgBackRest archive-async, process-max 2"},
	)
	return rows
}

func readResults(path string) (map[string][]run, []string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	out := map[string][]run{}
	var order []string
	s := bufio.NewScanner(f)
	for s.Scan() {
		fl := strings.Fields(s.Text())
		if len(fl) != 6 {
			continue
		}
		var r run
		r.wall, _ = strconv.ParseFloat(fl[2], 64)
		r.rssKB, _ = strconv.ParseInt(fl[3], 10, 64)
		r.bytes, _ = strconv.ParseInt(fl[4], 10, 64)
		r.stored, _ = strconv.ParseInt(fl[5], 10, 64)
		if _, ok := out[fl[0]]; !ok {
			order = append(order, fl[0])
		}
		out[fl[0]] = append(out[fl[0]], r)
	}
	return out, order, s.Err()
}

func readMeta(path string) (map[string]string, []string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, err
	}
	m := map[string]string{}
	var keys []string
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, "=")
		if ok {
			m[k] = v
			keys = append(keys, k)
		}
	}
	return m, keys, nil
}

// summary is the median run of a measurement, with the peak RSS over all runs.
type summary struct {
	n      int
	wall   float64
	rssKB  int64
	bytes  int64
	stored int64
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(runs []run) summary {
	var walls, bytes, stored []float64
	var s summary
	for _, r := range runs {
		walls = append(walls, r.wall)
		bytes = append(bytes, float64(r.bytes))
		stored = append(stored, float64(r.stored))
		s.rssKB = max(s.rssKB, r.rssKB)
	}
	s.n = len(runs)
	s.wall = median(walls)
	s.bytes = int64(median(bytes))
	s.stored = int64(median(stored))
	return s
}

const mib = 1 << 20

func fmtWall(id string, s summary, segs int) string {
	if (strings.HasPrefix(id, "push/") || strings.HasPrefix(id, "get/")) && segs > 0 {
		return fmt.Sprintf("%.2f (%.0f ms/seg)", s.wall, 1000*s.wall/float64(segs))
	}
	return fmt.Sprintf("%.1f", s.wall)
}

func fmtRate(s summary) string {
	if s.bytes <= 0 || s.wall <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", float64(s.bytes)/mib/s.wall)
}

func fmtStored(s summary) string {
	if s.stored < 0 {
		return "–"
	}
	return fmt.Sprintf("%.1f", float64(s.stored)/mib)
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

// cmdReport prints the markdown block of results: machine, table, raw runs.
func cmdReport(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	results := fs.String("results", "", "results.tsv")
	metaPath := fs.String("meta", "", "meta file (key=value lines)")
	fs.Parse(args)
	data, order, err := readResults(*results)
	if err != nil {
		return err
	}
	meta, _, err := readMeta(*metaPath)
	if err != nil {
		return err
	}
	return writeReport(os.Stdout, data, order, meta)
}

func writeReport(w io.Writer, data map[string][]run, order []string, meta map[string]string) error {
	segs, _ := strconv.Atoi(meta["segments"])
	fmt.Fprintf(w, "### BENCH_SCALE=%s: data directory %s MiB (%s MiB after the 5%% changes), median of %s runs (%s)\n\n", meta["scale"], meta["db_mib"], meta["db_mib_changed"], meta["reps"], meta["date"])
	fmt.Fprintf(w, "Machine: %s. One-minute load average before the measurements: %s (the machine is shared; 2 means both cores busy).\n\n", meta["machine"], meta["load"])
	fmt.Fprintf(w, "Versions: %s.\n\n", meta["versions"])
	fmt.Fprintln(w, "| operation | compared with | wall s, pgward / other | ratio (target) | MiB/s, pgward / other | stored MiB, pgward / other | peak RSS MiB, pgward / other |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, r := range rowSpecs(meta) {
		o, ok1 := data[r.ours]
		t, ok2 := data[r.theirs]
		if !ok1 || !ok2 {
			continue
		}
		a, b := summarize(o), summarize(t)
		ratio := a.wall / b.wall
		rc := fmt.Sprintf("%.2f", ratio)
		if r.target > 0 {
			rc += fmt.Sprintf(" %s (≤ %.1f)", mark(ratio <= r.target), r.target)
		}
		sc := fmtStored(a) + " / " + fmtStored(b)
		if r.storedTarget && a.stored >= 0 && b.stored > 0 {
			sr := float64(a.stored) / float64(b.stored)
			sc += fmt.Sprintf(" (%.2f %s ≤ 1.0)", sr, mark(sr <= 1.0))
		}
		mc := fmt.Sprintf("%.0f / %.0f", float64(a.rssKB)/1024, float64(b.rssKB)/1024)
		if r.rssTarget {
			mc += " " + mark(a.rssKB <= 256*1024) + " (≤ 256)"
		}
		fmt.Fprintf(w, "| %s | %s | %s / %s | %s | %s / %s | %s | %s |\n",
			r.op, r.vs, fmtWall(r.ours, a, segs), fmtWall(r.theirs, b, segs), rc, fmtRate(a), fmtRate(b), sc, mc)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "<details><summary>every run (wall s; peak RSS MiB; stored MiB)</summary>")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| measurement | runs |")
	fmt.Fprintln(w, "|---|---|")
	for _, id := range order {
		var parts []string
		for _, r := range data[id] {
			p := fmt.Sprintf("%.2f; %.0f", r.wall, float64(r.rssKB)/1024)
			if r.stored >= 0 {
				p += fmt.Sprintf("; %.1f", float64(r.stored)/mib)
			}
			parts = append(parts, p)
		}
		fmt.Fprintf(w, "| %s | %s |\n", id, strings.Join(parts, " · "))
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "</details>")
	return nil
}

// cmdSplice replaces the lines between "<!-- bench:begin" and "<!-- bench:end"
// in a markdown file with a generated block, or appends the block with its
// markers when the file has none.
func cmdSplice(args []string) error {
	fs := flag.NewFlagSet("splice", flag.ExitOnError)
	file := fs.String("file", "", "markdown file to update")
	block := fs.String("block", "", "file with the generated block")
	fs.Parse(args)
	gen, err := os.ReadFile(*block)
	if err != nil {
		return err
	}
	doc, err := os.ReadFile(*file)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	const begin, end = "<!-- bench:begin", "<!-- bench:end"
	text := string(doc)
	i := strings.Index(text, begin)
	j := strings.Index(text, end)
	body := strings.TrimRight(string(gen), "\n") + "\n"
	switch {
	case i >= 0 && j > i:
		startLine := strings.Index(text[i:], "\n")
		endLine := strings.Index(text[j:], "\n")
		if startLine < 0 || endLine < 0 {
			return fmt.Errorf("%s: markers must be on lines of their own", *file)
		}
		text = text[:i+startLine+1] + body + text[j:]
	default:
		text += "\n" + begin + " (generated by bench/run.sh) -->\n" + body + end + " -->\n"
	}
	tmp := *file + ".tmp"
	if err := os.WriteFile(tmp, []byte(text), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, *file)
}
