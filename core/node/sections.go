package node

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"github.com/aspen-db/aspen/core/module"
	"slices"

	"github.com/aspen-db/aspen/core/storage"
)

// A snapshot (what a lagging follower is sent, and the state inside a
// backup) is a versioned list of tagged sections, one per part of the
// replicated state:
//
//	magic "ASPNSNAP" | format version uvarint | section count uvarint |
//	per section: tag (uvarint length, bytes) | version uvarint | data (uvarint length, bytes)
//
// A part that changes its encoding bumps its section's version; a new part
// adds a section. A decoder refuses a tag or a version it does not know,
// naming it, rather than drop state it cannot read. Snapshots from before
// sections (three positional frames: KV, sessions, membership) still decode,
// so old backups restore.
var snapshotMagic = []byte("ASPNSNAP")

const snapshotFormat = 1

// section is one tagged part of a snapshot.
type section struct {
	tag     string
	version uint64
	data    []byte
}

// sectionTime is the host's own section: the replicated time. Every other
// section is a replicated state's (modules.go), tagged with its name.
const sectionTime = "time"

// snapshotParts is a decoded snapshot: each section's data by tag.
type snapshotParts map[string][]byte

// encodeSections lays out parts in the order and versions specs give.
func encodeSections(parts snapshotParts, specs []section) []byte {
	n := len(snapshotMagic) + 4
	for _, d := range parts {
		n += len(d) + 24
	}
	b := append(make([]byte, 0, n), snapshotMagic...)
	b = binary.AppendUvarint(b, snapshotFormat)
	b = binary.AppendUvarint(b, uint64(len(specs)))
	for _, s := range specs {
		b = binary.AppendUvarint(b, uint64(len(s.tag)))
		b = append(b, s.tag...)
		b = binary.AppendUvarint(b, s.version)
		b = binary.AppendUvarint(b, uint64(len(parts[s.tag])))
		b = append(b, parts[s.tag]...)
	}
	return b
}

// decodeSections reads a sectioned snapshot, or a positional one from before
// sections, refusing any section or version not in specs. A section that is
// absent is left to its state to accept (a module newer than the snapshot)
// or refuse.
func decodeSections(b []byte, specs []section) (snapshotParts, error) {
	if !bytes.HasPrefix(b, snapshotMagic) {
		return decodePositional(b)
	}
	r := module.Reader{B: b[len(snapshotMagic):]}
	if f := r.Uvarint(); r.Err == nil && f != snapshotFormat {
		return nil, fmt.Errorf("%w: snapshot format %d, this version reads %d", storage.ErrCorrupt, f, snapshotFormat)
	}
	parts := snapshotParts{}
	for n := r.Uvarint(); n > 0 && r.Err == nil; n-- {
		s := section{tag: r.String(), version: r.Uvarint()}
		s.data = r.Bytes()
		if r.Err != nil {
			break
		}
		if err := checkSection(s, parts, specs); err != nil {
			return nil, err
		}
		parts[s.tag] = s.data
	}
	if r.Err != nil || len(r.B) != 0 {
		return nil, fmt.Errorf("%w: snapshot section framing", storage.ErrCorrupt)
	}
	return parts, nil
}

func checkSection(s section, seen snapshotParts, specs []section) error {
	i := slices.IndexFunc(specs, func(spec section) bool { return spec.tag == s.tag })
	known := i >= 0
	var want uint64
	if known {
		want = specs[i].version
	}
	switch {
	case !known:
		return fmt.Errorf("%w: snapshot section %q is not known to this version of aspen", storage.ErrCorrupt, s.tag)
	case s.version != want:
		return fmt.Errorf("%w: snapshot section %q has version %d, this version of aspen reads %d", storage.ErrCorrupt, s.tag, s.version, want)
	}
	if _, dup := seen[s.tag]; dup {
		return fmt.Errorf("%w: snapshot section %q appears twice", storage.ErrCorrupt, s.tag)
	}
	return nil
}

// decodePositional reads the snapshot layout from before sections: the KV
// state and the session table each length-prefixed, then the membership.
func decodePositional(b []byte) (snapshotParts, error) {
	kvData, rest, ok := cutFrame(b)
	var sessData, membersData []byte
	if ok {
		sessData, membersData, ok = cutFrame(rest)
	}
	if !ok {
		return nil, fmt.Errorf("%w: snapshot framing", storage.ErrCorrupt)
	}
	return snapshotParts{"kv": kvData, "sessions": sessData, "members": membersData}, nil
}

func encodeTime(ns int64) []byte { return binary.AppendVarint(nil, ns) }

// decodeTime reads the time section; an absent one (an older snapshot) is 0.
func decodeTime(b []byte) (int64, error) {
	if len(b) == 0 {
		return 0, nil
	}
	ns, n := binary.Varint(b)
	if n != len(b) {
		return 0, fmt.Errorf("%w: snapshot time section", storage.ErrCorrupt)
	}
	return ns, nil
}

func cutFrame(b []byte) (frame, rest []byte, ok bool) {
	size, n := binary.Uvarint(b)
	if n <= 0 || uint64(len(b[n:])) < size {
		return nil, nil, false
	}
	return b[n : n+int(size)], b[n+int(size):], true
}
