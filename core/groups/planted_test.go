//go:build aspenbugs

package groups

import (
	"testing"

	"github.com/aspen-db/aspen/core/bugs"
)

// Each planted defect fails the unit check that guards against it.

func TestPlantedGroupStaleCommitIsCaught(t *testing.T) {
	r := newPartitioned(t)
	r.m.Bugs = bugs.Of(bugs.GroupStaleCommit)
	if err := checkStaleCommitRefused(r); err == nil {
		t.Fatal("group_stale_commit planted, yet the stale commit was refused")
	} else {
		t.Logf("caught: %v", err)
	}
}

func TestPlantedAssignmentMapOrderIsCaught(t *testing.T) {
	for range 20 {
		if err := checkLeaveAgrees(t, bugs.Of(bugs.AssignmentMapOrder)); err != nil {
			t.Logf("caught: %v", err)
			return
		}
	}
	t.Fatal("assignment_map_order planted, yet 20 runs of replicas agreed")
}
