package topics

// Message is one published message as readers see it.
type Message struct {
	Topic     string
	Partition int
	Offset    uint64 // dense within its partition, in commit order
	Key       []byte // nil: published without a key (partition round-robin)
	Value     []byte
	Headers   []Header
	Index     uint64 // the log index of the entry that published it: its commit position
	AtNs      int64  // replicated time of that entry
}

// Header is one message header.
type Header struct {
	Key   string
	Value []byte
}

// Log is the topics module as consumer groups read it (core/groups): how
// many partitions a topic has, which offsets each partition holds, and its
// messages. Every method is a pure read of replicated state.
type Log interface {
	// Partitions returns topic's partition count, and false when there is
	// no such topic.
	Partitions(topic string) (int, bool)
	// Bounds returns the first offset partition p still holds (older ones
	// were removed by retention) and the offset the next message will get.
	Bounds(topic string, p int) (first, end uint64)
	// Read returns up to max messages of partition p from offset from on
	// (from below first starts at first), at most maxBytes of values in all
	// but always at least one message when there is one.
	Read(topic string, p int, from uint64, max, maxBytes int) []Message
	// OffsetAt returns the first offset of partition p whose message was
	// published at or after atNs (end when none), for resets "to a time".
	OffsetAt(topic string, p int, atNs int64) uint64
}
