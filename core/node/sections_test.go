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
	cfg := DefaultConfig(1, []uint64{1})
	n := &Node{cfg: cfg, h: newHosted(cfg)}
	if err := n.restoreBackup(b); err != nil {
		t.Fatalf("restore: %v", err)
	}
	var got []string
	n.h.kv.M.Ascend(func(key []byte, r kv.Record) bool {
		got = append(got, string(key)+"="+string(r.Value))
		return true
	})
	if strings.Join(got, ",") != "a=1,b=2,c=3" || n.h.kv.M.Revision() != 3 || n.h.sessions.Len() != 2 {
		t.Fatalf("restored %v at revision %d with %d sessions, want a=1,b=2,c=3 at 3 with 2", got, n.h.kv.M.Revision(), n.h.sessions.Len())
	}
}

// A snapshot missing a section its state cannot do without fails to
// restore, naming the section; one missing a newer module's restores it empty.
func TestMissingSections(t *testing.T) {
	cfg := DefaultConfig(1, []uint64{1})
	specs := newHosted(cfg).sectionSpecs()
	full := newHosted(cfg)
	parts := snapshotParts{}
	for _, s := range full.states {
		parts[s.Name()] = s.Freeze().Encode()
	}
	backup := func(parts snapshotParts) Backup {
		var present []section
		for _, s := range specs {
			if _, ok := parts[s.tag]; ok {
				present = append(present, s)
			}
		}
		return Backup{state: encodeSections(parts, present)}
	}
	noLeases := snapshotParts{"kv": parts["kv"], "sessions": parts["sessions"], "members": parts["members"]}
	if err := (&Node{cfg: cfg, h: newHosted(cfg)}).restoreBackup(backup(noLeases)); err != nil {
		t.Fatalf("restore without a leases section: %v", err)
	}
	noSessions := snapshotParts{"kv": parts["kv"]}
	err := (&Node{cfg: cfg, h: newHosted(cfg)}).restoreBackup(backup(noSessions))
	if !errors.Is(err, ErrBadBackup) || !strings.Contains(err.Error(), "sessions") {
		t.Fatalf("restore without sessions: got %v, want a bad backup naming sessions", err)
	}
}

func TestSectionsRoundTripAndRefusals(t *testing.T) {
	specs := knownSections()
	parts := snapshotParts{"kv": []byte("k"), "sessions": []byte("s"), "members": nil}
	enc := encodeSections(parts, specs)
	got, err := decodeSections(enc, specs)
	if err != nil || string(got["kv"]) != "k" || string(got["sessions"]) != "s" || len(got["members"]) != 0 {
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
		{"unknown section", withSection("streams", 1), `section "streams" is not known`},
		{"unknown version", withSection("kv", 9), `section "kv" has version 9`},
		{"truncated", enc[:len(enc)-1], "framing"},
		{"newer format", append(append([]byte(nil), snapshotMagic...), 2), "format 2"},
	}
	for _, c := range cases {
		_, err := decodeSections(c.data, specs)
		if !errors.Is(err, storage.ErrCorrupt) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want a corruption error saying %q", c.name, err, c.want)
		}
	}
}
