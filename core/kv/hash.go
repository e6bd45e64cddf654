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

// recordHash is key and r's share of the digest, which newItem caches.
func recordHash(key []byte, r *Record) uint64 {
	h := uint64(fnvOffset)
	h = fnvUint(h, uint64(len(key)))
	h = fnvBytes(h, key)
	h = fnvUint(h, uint64(len(r.Value)))
	h = fnvBytes(h, r.Value)
	h = fnvUint(h, uint64(r.CreateRev))
	h = fnvUint(h, uint64(r.ModRev))
	h = fnvUint(h, uint64(r.Version))
	if r.extended() { // records without Consul's fields hash as before them
		h = fnvUint(h, r.Flags)
		h = fnvUint(h, r.LockIndex)
		h = fnvUint(h, uint64(len(r.Session)))
		h = fnvString(h, r.Session)
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

func fnvString(h uint64, s string) uint64 {
	for i := range len(s) {
		h ^= uint64(s[i])
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
