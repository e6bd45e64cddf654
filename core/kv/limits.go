package kv

import (
	"bytes"
	"errors"
	"fmt"
)

// Sentinel errors Validate wraps; test for them with errors.Is.
var (
	ErrKeyTooLarge   = errors.New("kv: key too large")
	ErrValueTooLarge = errors.New("kv: value too large")
	ErrTooManyOps    = errors.New("kv: too many ops")
	ErrEmptyKey      = errors.New("kv: empty key")
	ErrBadOp         = errors.New("kv: bad op")
)

// Limits bounds what a single txn may ask for. Every field is a maximum, so a
// zero field allows nothing: start from DefaultLimits.
type Limits struct {
	KeyBytesMax   int
	ValueBytesMax int
	// TxnOpsMax bounds compares, then ops and else ops together.
	TxnOpsMax int
	// RangeLimitMax bounds the Limit a Range may ask for.
	RangeLimitMax int
}

// DefaultLimits returns limits that keep one txn, and its log entry, small
// enough not to stall the replication pipeline.
func DefaultLimits() Limits {
	return Limits{
		KeyBytesMax:   1536,
		ValueBytesMax: 512 << 10,
		TxnOpsMax:     128,
		RangeLimitMax: 10000,
	}
}

// Validate reports the first way t breaks the limits or is malformed, wrapping
// one of the sentinel errors. The caller validates before proposing, because
// Apply runs whatever reached the log and must not fail there.
//
// Besides sizes, it rejects unknown op types, targets and results; a Range or
// DeleteRange whose End is set but not after Key; End, Prefix or Limit on ops
// that ignore them; and a negative Limit or one above RangeLimitMax.
func (l Limits) Validate(t Txn) error {
	if n := len(t.Compares) + len(t.Then) + len(t.Else); n > l.TxnOpsMax {
		return fmt.Errorf("%w: txn of %d ops exceeds %d", ErrTooManyOps, n, l.TxnOpsMax)
	}
	for i, c := range t.Compares {
		if err := l.validateCompare(c); err != nil {
			return fmt.Errorf("compare %d: %w", i, err)
		}
	}
	for i, op := range t.Then {
		if err := l.validateOp(op); err != nil {
			return fmt.Errorf("then op %d: %w", i, err)
		}
	}
	for i, op := range t.Else {
		if err := l.validateOp(op); err != nil {
			return fmt.Errorf("else op %d: %w", i, err)
		}
	}
	return l.validatePubs(t.Publish)
}

func (l Limits) validateCompare(c Compare) error {
	if err := l.validateKey(c.Key); err != nil {
		return err
	}
	if c.Target < TargetValue || c.Target > TargetLockable {
		return fmt.Errorf("%w: unknown compare target %d", ErrBadOp, c.Target)
	}
	if c.Result < Equal || c.Result > Greater {
		return fmt.Errorf("%w: unknown compare result %d", ErrBadOp, c.Result)
	}
	if c.Target == TargetExists && c.Result != Equal && c.Result != NotEqual {
		return fmt.Errorf("%w: existence compares only with equal or not equal", ErrBadOp)
	}
	if c.Target > TargetExists && c.Result != Equal && c.Result != NotEqual {
		return fmt.Errorf("%w: session and lock compares only with equal or not equal", ErrBadOp)
	}
	if c.Target == TargetLockable && len(c.Value) == 0 {
		return fmt.Errorf("%w: a lock compare names a session", ErrBadOp)
	}
	if c.Target == TargetValue && len(c.Value) > l.ValueBytesMax {
		return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrValueTooLarge, len(c.Value), l.ValueBytesMax)
	}
	return nil
}

func (l Limits) validateOp(op Op) error {
	switch op.Type {
	case OpGet, OpPut, OpDelete:
		if len(op.End) > 0 || op.Prefix || op.Limit != 0 {
			return fmt.Errorf("%w: end, prefix and limit apply only to ranges", ErrBadOp)
		}
		if err := l.validateKey(op.Key); err != nil {
			return err
		}
		if op.Type == OpPut && len(op.Value) > l.ValueBytesMax {
			return fmt.Errorf("%w: value of %d bytes exceeds %d", ErrValueTooLarge, len(op.Value), l.ValueBytesMax)
		}
		return validateLockOp(op)
	case OpRange, OpDeleteRange:
		if err := validateLockOp(op); err != nil {
			return err
		}
		return l.validateRange(op)
	default:
		return fmt.Errorf("%w: unknown op type %d", ErrBadOp, op.Type)
	}
}

// validateLockOp checks a put's flags and lock fields, which no other op has.
func validateLockOp(op Op) error {
	switch {
	case op.Type != OpPut && (op.Flags != 0 || op.Lock != LockNone || op.Session != ""):
		return fmt.Errorf("%w: flags and locks apply only to puts", ErrBadOp)
	case op.Lock > LockRelease:
		return fmt.Errorf("%w: unknown lock op %d", ErrBadOp, op.Lock)
	case (op.Lock == LockNone) != (op.Session == ""):
		return fmt.Errorf("%w: a lock op names its session, and only a lock op does", ErrBadOp)
	case len(op.Session) > sessionBytesMax:
		return fmt.Errorf("%w: session id of %d bytes exceeds %d", ErrBadOp, len(op.Session), sessionBytesMax)
	}
	return nil
}

// sessionBytesMax bounds a session id in an op (Consul's are 36-byte UUIDs).
const sessionBytesMax = 128

func (l Limits) validateRange(op Op) error {
	// An empty Key is a meaningful lower bound once End or Prefix makes the op a
	// range: it starts at the first key.
	if len(op.End) == 0 && !op.Prefix {
		if err := l.validateKey(op.Key); err != nil {
			return err
		}
	}
	if len(op.Key) > l.KeyBytesMax {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrKeyTooLarge, len(op.Key), l.KeyBytesMax)
	}
	if len(op.End) > l.KeyBytesMax {
		return fmt.Errorf("%w: range end of %d bytes exceeds %d", ErrKeyTooLarge, len(op.End), l.KeyBytesMax)
	}
	if len(op.End) > 0 && bytes.Compare(op.End, op.Key) <= 0 {
		return fmt.Errorf("%w: range end %q is not after key %q", ErrBadOp, op.End, op.Key)
	}
	if op.Limit < 0 {
		return fmt.Errorf("%w: negative limit %d", ErrBadOp, op.Limit)
	}
	if op.Type == OpDeleteRange && op.Limit != 0 {
		return fmt.Errorf("%w: delete range takes no limit", ErrBadOp)
	}
	if op.Limit > l.RangeLimitMax {
		return fmt.Errorf("%w: limit %d exceeds %d", ErrBadOp, op.Limit, l.RangeLimitMax)
	}
	return nil
}

func (l Limits) validateKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > l.KeyBytesMax {
		return fmt.Errorf("%w: key of %d bytes exceeds %d", ErrKeyTooLarge, len(key), l.KeyBytesMax)
	}
	return nil
}
