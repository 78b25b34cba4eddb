package engine

// Reading the archive_command's own error out of the server log.

import (
	"context"
	"encoding/hex"
	"strings"
)

// archiveErrorFromLog reads the tail of the server's current log file (this
// needs the logging collector and superuser or pg_read_server_files) and
// returns the archive_command's error.
func (s *checkSession) archiveErrorFromLog(ctx context.Context) string {
	row, err := s.query(ctx, `SELECT pg_read_binary_file(f, greatest((pg_stat_file(f)).size - 65536, 0), 65536) FROM pg_current_logfile() AS f WHERE f IS NOT NULL`)
	if err != nil || len(row) != 1 {
		if err != nil {
			s.o.Log.Debug("cannot read the server log", "err", err)
		}
		return ""
	}
	text, err := hex.DecodeString(strings.TrimPrefix(row[0], `\x`))
	if err != nil {
		return ""
	}
	return ArchiveFailureFromLog(string(text))
}

// ArchiveFailureFromLog picks the archive_command's own error out of a server
// log: the last line pgward printed ("pgward: ...") before PostgreSQL's last
// "archive command failed" line, else that line itself.
func ArchiveFailureFromLog(log string) string {
	lines := strings.Split(log, "\n")
	last := -1
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "archive command failed") {
			last = i
			break
		}
	}
	if last < 0 {
		return ""
	}
	clip := func(s string) string {
		s = strings.TrimSpace(s)
		if len(s) > 500 {
			s = s[:500] + "..."
		}
		return s
	}
	for i := last - 1; i >= 0 && i >= last-20; i-- {
		if strings.Contains(lines[i], "archive command failed") {
			break
		}
		if j := strings.Index(lines[i], "pgward: "); j >= 0 {
			return clip(lines[i][j:])
		}
	}
	return clip(lines[last])
}
