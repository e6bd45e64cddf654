package server

import (
	"context"
	"errors"
	"time"

	"github.com/aspen-db/aspen/core/node"
)

// Hooks declared in a node's config (Config.Hooks, [[hooks]] in its TOML)
// are created once, when the node bootstraps a new cluster: a restart never
// creates them again, so a hook deleted or changed through the API stays
// so. Every member of a new cluster may declare the same hooks; the first
// create of a name wins and the others are refused as duplicates and
// skipped, as is a name a restored backup already holds. A declaration the
// cluster refuses (an invalid pattern, a shell hook whose token does not
// allow its command) is logged as an error and skipped: the node runs on.
// Each create is retried, while the cluster has no leader yet, for at most
// hookBootAttemptsMax rounds of callDeadlineMs.

const (
	// hookBootAttemptsMax bounds the calls one declared hook may take while
	// the new cluster elects its first leader: the other members may start
	// minutes after this one, each attempt waiting up to callDeadlineMs.
	hookBootAttemptsMax = 30
	// hookBootPauseMs is the pause between those attempts.
	hookBootPauseMs = 1_000
)

// createBootHooks creates the hooks of the config; it runs once, owned by
// the server, when the node bootstrapped a new cluster.
func (s *Server) createBootHooks() {
	for _, req := range s.cfg.Hooks {
		s.createBootHook(req)
		if s.ctx.Err() != nil {
			return
		}
	}
}

func (s *Server) createBootHook(req HookRequest) {
	log := s.log.With("hook", req.Name)
	for attempt := 1; attempt <= hookBootAttemptsMax; attempt++ {
		retry, err := s.tryBootHook(req)
		var refused *node.Error
		switch {
		case err == nil:
			log.Info("created hook declared in the config")
			return
		case errors.As(err, &refused) && refused.Outcome == node.Conflict:
			log.Info("hook declared in the config already exists; left as it is", "detail", refused.Detail)
			return
		case !retry:
			log.Error("hook declared in the config refused; skipped", "err", err)
			return
		}
		log.Debug("cannot create hook declared in the config yet", "attempt", attempt, "err", err)
		select {
		case <-s.stop:
			return
		case <-time.After(hookBootPauseMs * time.Millisecond):
		}
	}
	log.Error("hook declared in the config not created: the cluster did not answer", "attempts", hookBootAttemptsMax)
}

// tryBootHook builds and proposes one create. It reports whether a failure
// is worth retrying: the cluster did not answer (no leader yet), as opposed
// to judging the request and refusing it.
func (s *Server) tryBootHook(req HookRequest) (retry bool, err error) {
	ctx, cancel := context.WithTimeout(s.ctx, callDeadlineMs*time.Millisecond)
	defer cancel()
	cmd, err := s.hookCreateCommand(ctx, req)
	if err != nil {
		return errors.Is(err, errUnchecked), err
	}
	_, err = s.Call(ctx, cmd)
	var refused *node.Error
	return err != nil && !(errors.As(err, &refused) && refused.Outcome.Refused()), err
}
