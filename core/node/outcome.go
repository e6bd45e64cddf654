package node

import "github.com/aspen-db/aspen/core/module"

// Outcome says how a request ended (core/module defines them, since modules
// answer with them too).
type Outcome = module.Outcome

// Error is an outcome other than OK as an error value.
type Error = module.Error

// The outcomes, as module defines them.
const (
	OK        = module.OK
	Invalid   = module.Invalid
	TooLarge  = module.TooLarge
	Conflict  = module.Conflict
	NotLeader = module.NotLeader
	Behind    = module.Behind
	Busy      = module.Busy
	Dropped   = module.Dropped
	Stale     = module.Stale
	Timeout   = module.Timeout
	NotFound  = module.NotFound
)
