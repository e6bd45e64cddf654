// Package audit is the replicated, append-only log of executions: one record
// per command a worker ran (or refused), written through raft, each record
// holding the SHA-256 of the one before it. Verify walks a chain of records
// and finds any record modified, removed or moved.
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/module"
)

// Kinds of record.
const (
	KindExec       byte = 1 // a command a worker ran or refused
	KindCheckpoint byte = 2 // the oldest records were pruned: names the last one pruned
)

// Exec is what a worker reports about one execution.
type Exec struct {
	TokenID   string
	Subject   string
	Worker    string
	Argv      []string
	Dir       string
	StartNs   int64 // the worker's clock
	EndNs     int64
	Exit      int64  // exit code; -1 when the command did not run or died of a signal
	Signal    string // the signal that ended it, if any
	Refused   string // why the worker refused to run it, if it did
	OutputSHA []byte // SHA-256 of the captured output (stdout then stderr), or empty
}

// Record is one link of the chain.
type Record struct {
	Seq       uint64
	Prev      [sha256.Size]byte // Hash of record Seq-1; zero for record 1
	Kind      byte
	AppliedNs int64 // replicated time of the append
	Exec      Exec  // KindExec
	// KindCheckpoint: the last record pruned, and its hash.
	PrunedSeq  uint64
	PrunedHash [sha256.Size]byte
	Hash       [sha256.Size]byte // SHA-256 of every field above, in canonical encoding
}

// recordVersion opens a record's canonical encoding.
const recordVersion = 1

// appendBody is the canonical encoding of every field but Hash: fixed order,
// varints and length-prefixed bytes, so one record has one encoding.
func (r *Record) appendBody(b []byte) []byte {
	b = append(b, recordVersion)
	b = binary.AppendUvarint(b, r.Seq)
	b = append(b, r.Prev[:]...)
	b = append(b, r.Kind)
	b = binary.AppendVarint(b, r.AppliedNs)
	b = appendExec(b, r.Exec)
	b = binary.AppendUvarint(b, r.PrunedSeq)
	return append(b, r.PrunedHash[:]...)
}

func appendExec(b []byte, e Exec) []byte {
	for _, s := range []string{e.TokenID, e.Subject, e.Worker} {
		b = module.AppendBytes(b, []byte(s))
	}
	b = binary.AppendUvarint(b, uint64(len(e.Argv)))
	for _, a := range e.Argv {
		b = module.AppendBytes(b, []byte(a))
	}
	b = module.AppendBytes(b, []byte(e.Dir))
	b = binary.AppendVarint(b, e.StartNs)
	b = binary.AppendVarint(b, e.EndNs)
	b = binary.AppendVarint(b, e.Exit)
	b = module.AppendBytes(b, []byte(e.Signal))
	b = module.AppendBytes(b, []byte(e.Refused))
	return module.AppendBytes(b, e.OutputSHA)
}

func readExec(r *module.Reader) Exec {
	e := Exec{TokenID: r.String(), Subject: r.String(), Worker: r.String()}
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		e.Argv = append(e.Argv, r.String())
	}
	e.Dir, e.StartNs, e.EndNs, e.Exit = r.String(), r.Varint(), r.Varint(), r.Varint()
	e.Signal, e.Refused = r.String(), r.String()
	if d := r.Bytes(); len(d) > 0 {
		e.OutputSHA = append([]byte(nil), d...)
	}
	return e
}

// ComputeHash is the hash a record's fields give.
func (r *Record) ComputeHash() [sha256.Size]byte { return sha256.Sum256(r.appendBody(nil)) }

// Encode is the record as stored: its canonical body, then its hash.
func (r *Record) Encode() []byte { return append(r.appendBody(nil), r.Hash[:]...) }

// DecodeRecord reads what Encode wrote. It does not check the hash: that is
// Verify's, which reports it as tampering rather than as a decoding error.
func DecodeRecord(b []byte) (Record, error) {
	if len(b) == 0 || b[0] != recordVersion {
		return Record{}, fmt.Errorf("audit record: %w: version", module.ErrMalformed)
	}
	rd := &module.Reader{B: b[1:]}
	var r Record
	r.Seq = rd.Uvarint()
	readHash(rd, &r.Prev)
	if len(rd.B) > 0 {
		r.Kind, rd.B = rd.B[0], rd.B[1:]
	}
	r.AppliedNs = rd.Varint()
	r.Exec = readExec(rd)
	r.PrunedSeq = rd.Uvarint()
	readHash(rd, &r.PrunedHash)
	readHash(rd, &r.Hash)
	return r, rd.Done("audit record")
}

func readHash(r *module.Reader, h *[sha256.Size]byte) {
	if r.Err != nil {
		return
	}
	if len(r.B) < sha256.Size {
		r.Fail("hash needs %d bytes, %d left", sha256.Size, len(r.B))
		return
	}
	copy(h[:], r.B)
	r.B = r.B[sha256.Size:]
}

// Head names the last record of a chain.
type Head struct {
	Seq  uint64
	Hash [sha256.Size]byte
}

// Verify walks records (consecutive, oldest first) and returns an error
// naming the first that was modified (its hash does not match its fields),
// removed or moved (its sequence number or previous hash does not follow on).
// The first record is either record 1 or anchored by a checkpoint record in
// the chain naming the record before it. When head.Seq is not 0 the chain
// must end at head: a removed tail shows there.
func Verify(records []Record, head Head) error {
	for i := range records {
		r := &records[i]
		if r.ComputeHash() != r.Hash {
			return fmt.Errorf("record %d was modified: its hash does not match its contents", r.Seq)
		}
		if i == 0 {
			continue
		}
		p := &records[i-1]
		if r.Seq != p.Seq+1 {
			return fmt.Errorf("record %d follows record %d: records were removed or reordered", r.Seq, p.Seq)
		}
		if r.Prev != p.Hash {
			return fmt.Errorf("record %d does not chain to record %d: a record was modified, removed or reordered", r.Seq, p.Seq)
		}
	}
	if len(records) > 0 {
		if err := verifyStart(records); err != nil {
			return err
		}
	}
	if head.Seq == 0 {
		return nil
	}
	if len(records) == 0 {
		return fmt.Errorf("no records, but the head is record %d", head.Seq)
	}
	last := records[len(records)-1]
	if last.Seq != head.Seq || last.Hash != head.Hash {
		return fmt.Errorf("the chain ends at record %d, but the head is record %d: records were removed from the end or the head altered", last.Seq, head.Seq)
	}
	return nil
}

// verifyStart checks the chain's first record is record 1 or anchored by a
// checkpoint.
func verifyStart(records []Record) error {
	first := records[0]
	var zero [sha256.Size]byte
	if first.Seq == 1 {
		if first.Prev != zero {
			return fmt.Errorf("record 1 names a previous record")
		}
		return nil
	}
	for _, r := range records {
		if r.Kind == KindCheckpoint && r.PrunedSeq == first.Seq-1 && bytes.Equal(r.PrunedHash[:], first.Prev[:]) {
			return nil
		}
	}
	return fmt.Errorf("records before %d are gone and no checkpoint record accounts for them", first.Seq)
}
