package main

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// testSession drives the session commands against the dev cluster: a
// session made through one node is listed, renewed and destroyed through
// another, a lock it holds goes with it, and a create the cluster refuses
// says why.
func testSession(t *testing.T, d *devCluster) {
	session := func(addr string, args ...string) outcome {
		t.Helper()
		return aspen(t, "", append([]string{"session"}, withAddr(addr, args)...)...)
	}
	o := session(d.addrs[0], "create", "--name", "deploy", "--ttl", "30s", "--lock-delay", "0s")
	o.wantCode(t, 0)
	id := strings.TrimSpace(o.stdout)
	o = session(d.addrs[1], "list")
	o.wantCode(t, 0)
	if !hasRow(o.stdout, id, "deploy", "aspen-1", "30s", "release", "0s") {
		t.Errorf("list: got\n%s\nwant a row for %s on aspen-1 with TTL 30s", o.stdout, id)
	}
	o = session(d.addrs[2], "list", "--node", "aspen-2")
	if o.wantCode(t, 0); o.stdout != "" {
		t.Errorf("list --node aspen-2: got\n%s\nwant nothing", o.stdout)
	}
	wantStdout(t, session(d.addrs[1], "renew", id), "renewed session "+id+"; TTL 30s\n")
	if body := httpDo(t, http.MethodPut, "http://"+d.addrs[2]+"/v1/kv/deploy/lock?acquire="+id); body != "true" {
		t.Fatalf("acquire with the session: %s", body)
	}
	wantStdout(t, session(d.addrs[2], "destroy", id), "destroyed session "+id+"\n")
	if body := httpDo(t, http.MethodGet, "http://"+d.addrs[0]+"/v1/kv/deploy/lock"); strings.Contains(body, id) {
		t.Errorf("the lock outlived its destroyed session: %s", body)
	}
	o = session(d.addrs[0], "info", id)
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "no session "+id)
	o = session(d.addrs[0], "renew", id)
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 404: Session id '"+id+"' not found")
	o = session(d.addrs[0], "create", "--ttl", "5s")
	o.wantCode(t, exitFailed)
	wantStderr(t, o, "server answered 400: invalid session request: TTL 5s")
}

// httpDo sends a request with no body and returns the 200 answer's body.
func httpDo(t *testing.T, method, url string) string {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%s %s: %s %s", method, url, resp.Status, body)
	}
	return strings.TrimSpace(string(body))
}
