package server

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aspen-db/aspen/core/audit"
	"github.com/aspen-db/aspen/core/storage"
	"github.com/aspen-db/aspen/core/token"
	"github.com/aspen-db/aspen/core/tokens"
	"github.com/aspen-db/aspen/runtime/diskstore"
)

func (c *cluster) key(i int) []byte {
	c.t.Helper()
	key, err := ReadKeyFile(filepath.Join(c.cfgs[i].DataDir, keyFileName))
	if err != nil {
		c.t.Fatalf("key of node %d: %v", i+1, err)
	}
	return key
}

func jsonBody(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A node bootstrapping alone makes its key (0600); tokens it did not sign
// and unsigned writes are refused; a signed revoke is replicated and listed.
func TestTokenAPI(t *testing.T) {
	c := startCluster(t, 1)
	st, err := os.Stat(filepath.Join(c.cfgs[0].DataDir, keyFileName))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: got %v, %v; want mode 0600", st, err)
	}
	key := c.key(0)
	now := time.Now().UnixNano()
	claims := token.Claims{ID: "t1", Subject: "ops", Commands: []string{"/bin/*"}, Dirs: []string{"/tmp"}, IssuedNs: now, ExpiresNs: now + int64(time.Hour)}
	good, _ := token.Sign(key, claims)
	forged, _ := token.Sign(make([]byte, token.KeyBytes), claims)
	expiredClaims := claims
	expiredClaims.IssuedNs, expiredClaims.ExpiresNs = now-2*int64(time.Hour), now-int64(time.Hour)
	expired, _ := token.Sign(key, expiredClaims)
	cases := []struct {
		path, body string
		want       int
	}{
		{"/v1/aspen/token/register", jsonBody(t, TokenRequest{Token: forged}), http.StatusUnauthorized},
		{"/v1/aspen/token/register", jsonBody(t, TokenRequest{Token: expired}), http.StatusForbidden},
		{"/v1/aspen/token/register", jsonBody(t, TokenRequest{Token: "aspen1.x"}), http.StatusBadRequest},
		{"/v1/aspen/token/register", `{"Tokn":"x"}`, http.StatusBadRequest},
		{"/v1/aspen/token/register", jsonBody(t, TokenRequest{Token: good}), http.StatusOK},
		{"/v1/aspen/token/revoke", jsonBody(t, TokenRequest{ID: "t1"}), http.StatusUnauthorized},
		{"/v1/aspen/token/revoke", jsonBody(t, TokenRequest{ID: "t1", Signature: hex.EncodeToString(token.RequestMAC(key, "/v1/aspen/token/revoke", tokens.Revoke("t2", 0).Body))}), http.StatusUnauthorized},
		{"/v1/aspen/token/revoke", jsonBody(t, TokenRequest{ID: "nope", Signature: hex.EncodeToString(token.RequestMAC(key, "/v1/aspen/token/revoke", tokens.Revoke("nope", 0).Body))}), http.StatusNotFound},
		{"/v1/aspen/token/revoke", jsonBody(t, TokenRequest{ID: "t1", Signature: hex.EncodeToString(token.RequestMAC(key, "/v1/aspen/token/revoke", tokens.Revoke("t1", 0).Body))}), http.StatusOK},
		{"/v1/aspen/audit/append", jsonBody(t, AuditAppend{Exec: audit.Exec{Argv: []string{"/bin/true"}}}), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		if code, _, body := do(t, "POST", c.url(0, tc.path), tc.body); code != tc.want {
			t.Errorf("POST %s %s: got %d %s, want %d", tc.path, tc.body, code, body, tc.want)
		}
	}
	code, _, body := do(t, "GET", c.url(0, "/v1/aspen/token/list"), "")
	var list TokenList
	if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Tokens) != 1 || !list.Tokens[0].Revoked || list.Tokens[0].Subject != "ops" {
		t.Fatalf("list: got %d %s, want t1 revoked", code, body)
	}
	if strings.Contains(body, strings.Split(good, ".")[2]) {
		t.Fatal("list shows the token's signature")
	}
}

func (c *cluster) appendAudit(i int, e audit.Exec) {
	c.t.Helper()
	sig := hex.EncodeToString(token.RequestMAC(c.key(i), "/v1/aspen/audit/append", audit.Append(e).Body))
	if code, _, body := do(c.t, "POST", c.url(i, "/v1/aspen/audit/append"), jsonBody(c.t, AuditAppend{Exec: e, Signature: sig})); code != 200 {
		c.t.Fatalf("append: got %d %s", code, body)
	}
}

func (c *cluster) auditChain(i int) ([]audit.Record, audit.Head) {
	c.t.Helper()
	code, _, body := do(c.t, "GET", c.url(i, "/v1/aspen/audit/list?limit=1000"), "")
	var out AuditList
	if code != 200 || json.Unmarshal([]byte(body), &out) != nil {
		c.t.Fatalf("audit list: got %d %s", code, body)
	}
	var recs []audit.Record
	for _, r := range out.Records {
		raw, _ := base64.StdEncoding.DecodeString(r.Raw)
		rec, err := audit.DecodeRecord(raw)
		if err != nil {
			c.t.Fatalf("record %d: %v", r.Seq, err)
		}
		recs = append(recs, rec)
	}
	h, _ := hex.DecodeString(out.HeadHash)
	head := audit.Head{Seq: out.HeadSeq}
	copy(head.Hash[:], h)
	return recs, head
}

// An audit record altered on disk (checksum resealed, as someone editing the
// store would) is caught by verify after the node restarts.
func TestAuditVerifyCatchesRecordAlteredOnDisk(t *testing.T) {
	c := startCluster(t, 1)
	for i := 0; i < 3; i++ {
		c.appendAudit(0, audit.Exec{TokenID: "t1", Worker: "w1", Argv: []string{"/bin/rm", "-rf", "/srv/old"}, Dir: "/srv"})
	}
	if recs, head := c.auditChain(0); len(recs) != 3 || audit.Verify(recs, head) != nil {
		t.Fatalf("before: got %d records, verify %v; want 3 verifying", len(recs), audit.Verify(recs, head))
	}
	c.servers[0].Close()
	c.servers[0] = nil

	store, err := diskstore.Open(c.cfgs[0].DataDir, diskstore.DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	key := binary.BigEndian.AppendUint64([]byte("a/r/"), 2)
	v, ok, err := store.Get(key)
	if err != nil || !ok {
		t.Fatalf("record 2 on disk: %v %v", ok, err)
	}
	payload, _ := storage.Open(key, v)
	rec, err := audit.DecodeRecord(payload)
	if err != nil {
		t.Fatal(err)
	}
	rec.Exec.Argv = []string{"/bin/true"} // hide what ran
	var b storage.Batch
	b.Put(key, rec.Encode())
	if err := errors.Join(store.Apply(b), store.Close()); err != nil {
		t.Fatal(err)
	}

	c.cfgs[0].HTTPAddr = "127.0.0.1:0"
	c.servers[0] = c.start(0)
	recs, head := c.auditChain(0)
	err = audit.Verify(recs, head)
	if err == nil || !strings.Contains(err.Error(), "record 2 was modified") {
		t.Fatalf("after the edit: got %v, want record 2 reported modified", err)
	}
}
