package sim

import "testing"

func TestQuick(t *testing.T) {
	sc, err := LoadScenario("../scenarios/baseline.toml")
	if err != nil { t.Fatal(err) }
	r := Run(sc, 1, Options{})
	t.Logf("%+v", r)
}
