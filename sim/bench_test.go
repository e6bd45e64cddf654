package sim

import (
	"testing"
)

// BenchmarkThreeNodes200OpsPerSecond measures simulation speed for the shape
// the foundation issue names: 3 nodes, 200 client ops/s, no faults. Run it on
// one core (make bench does GOMAXPROCS=1) and read x_realtime and events/s.
func BenchmarkThreeNodes200OpsPerSecond(b *testing.B) {
	sc := loadScenario(b, "../scenarios/baseline.toml")
	sc.Run.FaultSeconds, sc.Run.HealSeconds = 30, 2
	var virt, wall float64
	var events int
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		r := Run(sc, uint64(i+1), Options{})
		if !r.Passed {
			b.Fatalf("seed %d failed: %v", i+1, r.Violations)
		}
		virt += r.VirtualSeconds
		wall += r.WallSeconds
		events += r.Events
	}
	b.ReportMetric(virt/wall, "x_realtime")
	b.ReportMetric(float64(events)/wall, "events/s")
}
