package kv

// AscendPrefix visits, in key order, every stored record whose key starts
// with prefix, until fn returns false. As with Ascend, key and value alias
// stored buffers, which are never modified in place: on a Clone that is
// written no more, they stay valid for as long as the caller holds them,
// while the original goes on applying.
func (m *Machine) AscendPrefix(prefix []byte, fn func(key []byte, r Record) bool) {
	m.ascend(span{key: prefix, kind: spanPrefix}, func(it item) bool { return fn(it.key(), it.record()) })
}
