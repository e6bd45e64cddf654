package topics

import (
	"fmt"

	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/module"
)

// The topics as the KV store publishes a txn's messages (kv.Publisher):
// checked whole before the txn changes anything, then published in order
// if its Then branch ran, in the same apply as its writes.

// CheckPublish refuses messages that could not all be published now.
func (m *Module) CheckPublish(pubs []kv.Pub) error {
	var size int64
	for i, p := range pubs {
		if m.topics[p.Topic] == nil {
			return &module.Error{Outcome: module.NotFound, Detail: fmt.Sprintf("publish %d: topic %q not found", i, p.Topic)}
		}
		in := In{Key: p.Key, Value: p.Value, Partition: -1}
		if err := m.limits.checkIn(&in); err != nil {
			a := refusal(err)
			return &module.Error{Outcome: a.Outcome, Detail: fmt.Sprintf("publish %d: %s", i, a.Detail)}
		}
		size += int64(len(p.Key) + len(p.Value))
	}
	if m.bytes+size > m.limits.TotalBytesMax {
		return &module.Error{Outcome: module.TooLarge, Detail: fmt.Sprintf("%v: %d bytes held, %d more would pass %d", ErrFull, m.bytes, size, m.limits.TotalBytesMax)}
	}
	return nil
}

// PublishAll publishes what CheckPublish passed, each as its own publish.
func (m *Module) PublishAll(env *module.Env, pubs []kv.Pub) error {
	for _, p := range pubs {
		if _, err := m.publish(env, p.Topic, []In{{Key: p.Key, Value: p.Value, Partition: -1}}); err != nil {
			return err
		}
	}
	return nil
}
