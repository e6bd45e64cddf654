package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/aspen-db/aspen/core/module"
)

// A backup is the replicated state at one applied index, framed as
//
//	magic "ASPENBK1" | index uvarint | revision varint | state length uvarint | state | CRC-32C (4 bytes, of all before it)
//
// where state is the snapshot encoding (sections.go: one section per
// replicated state, and the replicated time).
var backupMagic = []byte("ASPENBK1")

// ErrBadBackup marks a backup file that is truncated, altered or not a backup.
var ErrBadBackup = errors.New("not a valid aspen backup")

// Backup describes a decoded backup.
type Backup struct {
	Index    uint64
	Revision int64
	state    []byte
}

// Backup encodes the replica's applied state. Drivers call it on the replica's
// own goroutine, after a ReadIndex barrier if the backup must include every
// write acknowledged before it was asked for.
func (n *Node) Backup() []byte {
	state := n.snapshotData()
	b := append([]byte(nil), backupMagic...)
	b = binary.AppendUvarint(b, n.applied)
	b = binary.AppendVarint(b, n.h.kv.M.Revision())
	b = binary.AppendUvarint(b, uint64(len(state)))
	b = append(b, state...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// DecodeBackup verifies a backup's checksum and framing.
func DecodeBackup(b []byte) (Backup, error) {
	if len(b) < len(backupMagic)+4 || string(b[:len(backupMagic)]) != string(backupMagic) {
		return Backup{}, fmt.Errorf("%w: missing header", ErrBadBackup)
	}
	body, sum := b[:len(b)-4], binary.BigEndian.Uint32(b[len(b)-4:])
	if got := crc32.Checksum(body, castagnoli); got != sum {
		return Backup{}, fmt.Errorf("%w: checksum %08x, want %08x (the file is damaged)", ErrBadBackup, got, sum)
	}
	r := body[len(backupMagic):]
	idx, n1 := binary.Uvarint(r)
	if n1 <= 0 {
		return Backup{}, fmt.Errorf("%w: index", ErrBadBackup)
	}
	rev, n2 := binary.Varint(r[n1:])
	if n2 <= 0 {
		return Backup{}, fmt.Errorf("%w: revision", ErrBadBackup)
	}
	state, rest, ok := cutFrame(r[n1+n2:])
	if !ok || len(rest) != 0 {
		return Backup{}, fmt.Errorf("%w: state framing", ErrBadBackup)
	}
	if _, err := decodeSections(state, knownSections()); err != nil {
		return Backup{}, fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	return Backup{Index: idx, Revision: rev, state: state}, nil
}

// restoreBackup loads a backup's state into a replica being bootstrapped:
// every section but membership (the new cluster has its own) and the time.
func (n *Node) restoreBackup(b Backup) error {
	parts, err := decodeSections(b.state, n.h.sectionSpecs())
	if err != nil {
		return err
	}
	timeNs, err := decodeTime(parts[sectionTime])
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadBackup, err)
	}
	for _, s := range n.h.states {
		if s == module.State(n.h.members) {
			continue
		}
		if err := s.Restore(parts[s.Name()]); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrBadBackup, s.Name(), err)
		}
	}
	n.timeNs = timeNs
	return nil
}
