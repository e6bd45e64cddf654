package kv

// The state digest is the XOR of one hash per stored item, so it is independent
// of the order keys were written in and can be updated in O(1) per write. Each
// item hash is FNV-1a over a length-prefixed encoding of the item, put through
// a finalizer so that XOR-ing many of them does not cancel structured bits.

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
	// revSalt keeps the revision's contribution apart from any item hash.
	revSalt = 0x9e3779b97f4a7c15
)

// Hash returns a 64-bit digest of the whole state, records and revision
// together. Replicas that applied the same log agree on it; it costs O(1).
func (m *Machine) Hash() uint64 {
	return mix64(m.digest ^ mix64(uint64(m.rev)^revSalt))
}

func (it item) hash() uint64 {
	h := uint64(fnvOffset)
	h = fnvUint(h, uint64(len(it.key)))
	h = fnvBytes(h, it.key)
	h = fnvUint(h, uint64(len(it.rec.Value)))
	h = fnvBytes(h, it.rec.Value)
	h = fnvUint(h, uint64(it.rec.CreateRev))
	h = fnvUint(h, uint64(it.rec.ModRev))
	h = fnvUint(h, uint64(it.rec.Version))
	if it.rec.extended() { // records without Consul's fields hash as before them
		h = fnvUint(h, it.rec.Flags)
		h = fnvUint(h, it.rec.LockIndex)
		h = fnvUint(h, uint64(len(it.rec.Session)))
		h = fnvBytes(h, []byte(it.rec.Session))
	}
	return mix64(h)
}

func fnvBytes(h uint64, b []byte) uint64 {
	for _, c := range b {
		h ^= uint64(c)
		h *= fnvPrime
	}
	return h
}

func fnvUint(h, v uint64) uint64 {
	for range 8 {
		h ^= v & 0xff
		h *= fnvPrime
		v >>= 8
	}
	return h
}

// mix64 is the 64-bit finalizer of MurmurHash3: it spreads every input bit
// over the whole output.
func mix64(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53e1a87
	h ^= h >> 33
	return h
}
