//go:build aspenbugs

package worker

import "testing"

// The cluster-going-away test fails when the pool runs a job on past the
// lease it could not renew.
func TestPlantedIgnoreDeadlineFailsTest(t *testing.T) {
	plantIgnoreDeadline.Store(true)
	defer plantIgnoreDeadline.Store(false)
	if err := clusterGoesAway(t); err == "" {
		t.Fatal("ignore_deadline: the job was stopped anyway")
	} else {
		t.Logf("caught: %s", err)
	}
}
