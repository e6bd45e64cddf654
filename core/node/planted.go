//go:build !aspenbugs

package node

import (
	"github.com/aspen-db/aspen/core/kv"
	"github.com/aspen-db/aspen/core/session"
	"github.com/aspen-db/aspen/core/storage"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// The seams where tests plant defects (planted_bugs.go, built only with
// -tags aspenbugs). In this build every seam hands back what it is given, so
// production code holds no planted branch; the compiler inlines them away.

func (n *Node) plantLoadedRevision(stored, _ int64) int64      { return stored }
func (n *Node) plantVerdict(v session.Verdict) session.Verdict { return v }
func (n *Node) plantNow(replicated int64) int64                { return replicated }
func (n *Node) plantGrace(graceNs int64) int64                 { return graceNs }
func (n *Node) plantLeads(leads bool) bool                     { return leads }
func (n *Node) plantKeepDeleted(*storage.Batch, int)           {}
func (n *Node) plantKeepTail(*storage.Batch, int)              {}
func (n *Node) plantRemoved(removed bool) bool                 { return removed }
func (n *Node) plantSync(*Ready, raft.Ready)                   {}
func (n *Node) plantEarly(early bool) bool                     { return early }
func (n *Node) plantStale(stale bool) bool                     { return stale }
func (n *Node) plantProposedConfChange(raftpb.ConfChangeV2)    {}
func (n *Node) plantVoter(voter bool, _ uint64) bool           { return voter }
func (n *Node) plantModules()                                  {}
func (n *Node) plantProposedTxn(kv.Txn)                        {}
