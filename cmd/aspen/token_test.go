package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testTokenAudit drives aspen token and aspen audit against the dev
// cluster, which made one cluster key in its data dir.
func testTokenAudit(t *testing.T, d *devCluster) {
	addr := d.addrs[0]
	key := filepath.Join(d.dir, "token.key")
	other := filepath.Join(t.TempDir(), "other.key")
	aspen(t, "", "token", "keygen", other).wantCode(t, 0)
	if st, err := os.Stat(other); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("keygen: %v, mode %v; want a file only its owner reads", err, st.Mode().Perm())
	}
	if o := aspen(t, "", "token", "keygen", other); o.code == 0 {
		t.Fatal("keygen over an existing key succeeded; it must never overwrite one")
	}

	create := func(key, id string) outcome {
		return aspen(t, "", "token", "create", "--addr", addr, "--key", key, "--subject", "ops",
			"--command", "/usr/local/bin/backup", "--dir", "/srv/backups", "--ttl", "1h", "--id", id)
	}
	o := create(key, "nightly")
	o.wantCode(t, 0)
	if !strings.HasPrefix(o.stdout, "aspen1.") {
		t.Fatalf("create: got %q, want the signed token", o.stdout)
	}
	if o := create(other, "forged"); o.code == 0 {
		t.Fatalf("a token signed with another key was registered: %q", o.stdout)
	}
	o = aspen(t, "", "token", "list", "--addr", addr)
	o.wantCode(t, 0)
	if !strings.Contains(o.stdout, "nightly") || strings.Contains(o.stdout, "forged") || strings.Contains(o.stdout, "aspen1.") {
		t.Fatalf("list: got\n%s\nwant nightly, not the forged one, and no signature", o.stdout)
	}
	wantStdout(t, aspen(t, "", "token", "revoke", "--addr", addr, "--key", key, "nightly"), "revoked nightly\n")
	o = aspen(t, "", "token", "list", "--addr", addr)
	if o.wantCode(t, 0); !strings.Contains(o.stdout, "true") {
		t.Fatalf("list after revoke: got\n%s\nwant nightly revoked", o.stdout)
	}

	aspen(t, "", "audit", "list", "--addr", addr).wantCode(t, 0)
	o = aspen(t, "", "audit", "verify", "--addr", addr)
	o.wantCode(t, 0)
	if !strings.HasPrefix(o.stdout, "audit log verified: ") {
		t.Fatalf("verify: got %q", o.stdout)
	}
}
