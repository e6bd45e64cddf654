package jobs

import (
	"encoding/binary"
	"fmt"

	"github.com/aspen-db/aspen/core/assert"
	"github.com/aspen-db/aspen/core/module"
)

// A batch complete reports several leased jobs done in one command, one
// entry in the log where single completes take one each: a worker that
// leased several jobs at once (Lease with n > 1) finishes them together, as
// SQS's DeleteMessageBatch does. Each item is judged alone under the same
// fencing rules as Complete (the job leased under that token, else
// Conflict; an unknown job NotFound) and answered alone: a stale token
// refuses its own item, never the others. The command as a whole is refused
// only when malformed or over a limit (no items, more than LeaseJobsMax, an
// item Validate would refuse as a single complete), and then nothing
// applies.
//
//	complete batch: count uvarint | (id uvarint | token uvarint | exit code varint | output | detail)...

// CompleteItem is one job of a batch complete.
type CompleteItem struct {
	ID     ID
	Token  uint64
	Result Result
}

// ItemAnswer is one item's answer in a batch: the job as the item left it,
// or the refusal (Outcome not OK, Detail why) that left it unchanged.
type ItemAnswer struct {
	Job     Job
	Outcome module.Outcome
	Detail  string
}

// CompleteBatch reports each item's job, held under its token, done with
// its result.
func CompleteBatch(items []CompleteItem) module.Command {
	b := binary.AppendUvarint(nil, uint64(len(items)))
	for _, it := range items {
		b = appendComplete(b, it.ID, it.Token, it.Result)
	}
	return module.Command{Kind: CmdCompleteBatch, Body: b}
}

// decodeCompleteBatch reads CompleteBatch's body as single completes, so
// each item is checked as one would be.
func decodeCompleteBatch(body []byte) ([]jobCmd, error) {
	r := &module.Reader{B: body}
	var items []jobCmd
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		c := jobCmd{kind: CmdComplete, id: ID(r.Uvarint()), token: r.Uvarint()}
		c.result.ExitCode, c.result.Output, c.result.Detail = r.Varint(), r.Bytes(), r.String()
		items = append(items, c)
	}
	return items, done(r, "job complete batch")
}

func (m *Module) checkCompleteBatch(items []jobCmd) error {
	if len(items) == 0 || len(items) > m.t.limits.LeaseJobsMax {
		return fmt.Errorf("%w: %d items in a batch complete, want 1 to %d", errInvalid, len(items), m.t.limits.LeaseJobsMax)
	}
	for i, c := range items {
		if err := m.checkJobCmd(c); err != nil {
			return fmt.Errorf("item %d: %w", i, err)
		}
	}
	return nil
}

// applyCompleteBatch completes each item as applyJobCmd would, then prunes
// by count once.
func (m *Module) applyCompleteBatch(env *module.Env, body []byte) module.Answer {
	items, err := decodeCompleteBatch(body)
	assert.That(err == nil, "job complete batch at %d does not decode: %v", env.Index, err)
	out := make([]ItemAnswer, len(items))
	for i, c := range items {
		j, err := m.t.Complete(c.id, m.plantCompleteToken(c.id, c.token), c.result, env.NowNs)
		if err != nil {
			a := refusal(err)
			out[i] = ItemAnswer{Outcome: a.Outcome, Detail: a.Detail}
			continue
		}
		m.save(env.Batch, c.id)
		delete(m.asked, c.id)
		out[i] = ItemAnswer{Job: j}
	}
	m.prune(env, 0)
	return answer(Answer{Items: out}, nil)
}

// appendItems lays out a batch's answers: count uvarint | (outcome byte |
// detail | job)...
func appendItems(b []byte, items []ItemAnswer) []byte {
	b = binary.AppendUvarint(b, uint64(len(items)))
	for i := range items {
		b = binary.AppendUvarint(b, uint64(items[i].Outcome))
		b = module.AppendBytes(b, []byte(items[i].Detail))
		b = appendJob(b, &items[i].Job)
	}
	return b
}

func readItems(r *module.Reader) []ItemAnswer {
	var out []ItemAnswer
	for n := r.Count(); n > 0 && r.Err == nil; n-- {
		o := r.Uvarint()
		if o != uint64(module.OK) && !module.Outcome(o).Refused() {
			r.Fail("item outcome %d", o)
		}
		out = append(out, ItemAnswer{Outcome: module.Outcome(o), Detail: r.String(), Job: readJob(r)})
	}
	return out
}
