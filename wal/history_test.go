package wal

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParseHistory(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []HistoryEntry
	}{
		{"empty", "", nil},
		{"one line, as PostgreSQL writes it", "1\t0/3000000\tno recovery target specified\n",
			[]HistoryEntry{{1, 0x3000000, "no recovery target specified"}}},
		{"three generations, with the extra newline PostgreSQL inserts after a copied parent",
			"1\t0/3000000\tno recovery target specified\n\n2\t0/50000A0\tat restore point \"x\"\n\n3\t1/2000028\tbefore transaction 742\n",
			[]HistoryEntry{
				{1, 0x3000000, "no recovery target specified"},
				{2, 0x50000A0, "at restore point \"x\""},
				{3, 0x102000028, "before transaction 742"},
			}},
		{"comments, blank lines, leading blanks, CRLF, no final newline",
			"# made by hand\r\n\r\n   \t\n  # indented comment\n 1\t0/3000000\tfirst\r\n\n4 \t 2/10\n",
			[]HistoryEntry{{1, 0x3000000, "first"}, {4, 0x200000010, ""}}},
		{"space separators and lower-case hex, as readTimeLineHistory's sscanf allows",
			"1 0/abcdef0 reason with  spaces ", []HistoryEntry{{1, 0xABCDEF0, "reason with  spaces"}}},
		{"PostgreSQL 19's zero-padded LSN", "1\t0/03000000\tno recovery target specified\n",
			[]HistoryEntry{{1, 0x3000000, "no recovery target specified"}}},
		{"gaps between timelines", "1\t0/3000000\tx\n7\t0/9000000\ty\n",
			[]HistoryEntry{{1, 0x3000000, "x"}, {7, 0x9000000, "y"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseHistory([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseHistoryRejects(t *testing.T) {
	tests := []struct{ in, msg string }{
		{"x\t0/3000000\treason\n", "expected a numeric timeline ID"},
		{"-1\t0/3000000\n", "expected a numeric timeline ID"},
		{"1\n", "expected a switch point LSN"},
		{"1\t\n", "expected a switch point LSN"},
		{"1\t0\treason\n", "expected a switch point LSN"},
		{"1\t0/\n", "expected a switch point LSN"},
		{"1\t/3000000\n", "expected a switch point LSN"},
		{"10/3000000\n", "expected a switch point LSN"}, // no separator: timeline 10, then "/..."
		{"1\t123456789/0\n", "expected a switch point LSN"},
		{"4294967296\t0/0\n", "expected a numeric timeline ID"},
		{"1\t0/3000000\tx\n1\t0/4000000\ty\n", "line 2 \"1\\t0/4000000\\ty\": timeline 1 does not follow 1; timeline IDs must increase"},
		{"2\t0/3000000\tx\n1\t0/4000000\ty\n", "timeline 1 does not follow 2"},
	}
	for _, tt := range tests {
		_, err := ParseHistory([]byte(tt.in))
		if !errors.Is(err, ErrBadHistory) {
			t.Errorf("ParseHistory(%q) = %v, want ErrBadHistory", tt.in, err)
			continue
		}
		if !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("ParseHistory(%q) = %q, want it to mention %q", tt.in, err, tt.msg)
		}
	}
}

func TestCheckHistoryOwner(t *testing.T) {
	entries := []HistoryEntry{{1, 0x3000000, ""}, {2, 0x5000000, ""}}
	if err := CheckHistoryOwner(3, entries); err != nil {
		t.Errorf("owner 3: %v", err)
	}
	if err := CheckHistoryOwner(5, nil); err != nil {
		t.Errorf("no entries: %v", err)
	}
	err := CheckHistoryOwner(2, entries)
	if !errors.Is(err, ErrBadHistory) || !strings.Contains(err.Error(), "00000002.history lists timeline 2") {
		t.Errorf("owner 2: %v", err)
	}
}
