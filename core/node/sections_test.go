package node

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/storage"
)

// A backup written before snapshots had sections (three positional frames)
// still decodes and restores.
func TestBackupFromBeforeSectionsRestores(t *testing.T) {
	old, err := os.ReadFile("testdata/backup-v1.aspen")
	if err != nil {
		t.Fatal(err)
	}
	b, err := DecodeBackup(old)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	n := &Node{cfg: DefaultConfig(1, []uint64{1})}
	if err := n.restoreBackup(b); err != nil {
		t.Fatalf("restore: %v", err)
	}
	var got []string
	n.kv.Ascend(func(key []byte, r kv.Record) bool {
		got = append(got, string(key)+"="+string(r.Value))
		return true
	})
	if strings.Join(got, ",") != "a=1,b=2,c=3" || n.kv.Revision() != 3 || n.sessions.Len() != 2 {
		t.Fatalf("restored %v at revision %d with %d sessions, want a=1,b=2,c=3 at 3 with 2", got, n.kv.Revision(), n.sessions.Len())
	}
}

func TestSectionsRoundTripAndRefusals(t *testing.T) {
	parts := snapshotParts{sectionKV: []byte("k"), sectionSessions: []byte("s"), sectionMembers: nil}
	enc := encodeSections(parts)
	got, err := decodeSections(enc)
	if err != nil || string(got[sectionKV]) != "k" || string(got[sectionSessions]) != "s" || len(got[sectionMembers]) != 0 {
		t.Fatalf("round trip: got %q, %v", got, err)
	}
	withSection := func(tag string, version uint64) []byte {
		b := append([]byte(nil), snapshotMagic...)
		b = append(b, snapshotFormat, 1, byte(len(tag)))
		b = append(b, tag...)
		return append(b, byte(version), 0)
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"unknown section", withSection("topics", 1), `section "topics" is not known`},
		{"unknown version", withSection(sectionKV, 9), `section "kv" has version 9`},
		{"missing section", withSection(sectionKV, 1), `no "sessions" section`},
		{"truncated", enc[:len(enc)-1], "framing"},
		{"newer format", append(append([]byte(nil), snapshotMagic...), 2), "format 2"},
	}
	for _, c := range cases {
		_, err := decodeSections(c.data)
		if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a corruption error saying %q", c.name, err, c.want)
		}
	}
}
