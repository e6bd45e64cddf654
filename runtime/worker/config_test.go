package worker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's worker config reads as written; a misspelt key is refused,
// not ignored (an ignored "comands" would leave a policy other than meant).
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "worker.toml")
	os.WriteFile(good, []byte(`name = "batch-1"
addrs = ["10.0.0.1:8500", "10.0.0.2:8500"]
key_file = "/etc/aspen/cluster.key"
concurrency = 4
poll_ms = 500

[shell]
commands = ["/usr/local/bin/backup.sh", "/usr/local/bin/report-*"]
dir_roots = ["/srv"]
env_allow = ["MODE", "BACKUP_*"]
timeout_ms_default = 60000
grace_ms = 5000
output_bytes_max = 65536
[shell.limits]
cpu_seconds = 600
open_files = 256
`), 0o600)
	cfg, err := LoadConfig(good)
	if err != nil || cfg.Name != "batch-1" || len(cfg.Addrs) != 2 || cfg.Concurrency != 4 || cfg.Shell.Commands[1] != "/usr/local/bin/report-*" ||
		cfg.Shell.GraceMs != 5000 || cfg.Shell.Limits.OpenFiles != 256 {
		t.Fatalf("load: %+v, %v", cfg, err)
	}
	bad := filepath.Join(dir, "bad.toml")
	os.WriteFile(bad, []byte("[shell]\ncomands = [\"/bin/true\"]\n"), 0o600)
	if _, err := LoadConfig(bad); err == nil || !strings.Contains(err.Error(), "comands") {
		t.Fatalf("misspelt key: %v, want it named", err)
	}
}
