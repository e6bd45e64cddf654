package faultcheck

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestPutOutcomes(t *testing.T) {
	tests := []struct {
		name    string
		code    int
		index   string
		body    string
		wantOK  bool
		wantOut outcome
	}{
		{"acknowledged", 200, "7", "true\n", true, applied},
		{"cas failed", 200, "7", "false\n", false, applied},
		{"unavailable", 503, "", `{"error":"no answer"}`, false, unknown},
		{"server error", 500, "", "oops", false, unknown},
		{"refused", 400, "", `{"error":"bad"}`, false, notApplied},
		{"no index", 200, "", "true", false, unknown},
		{"garbled", 200, "7", "maybe", false, unknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tt.index != "" {
					w.Header().Set("X-Consul-Index", tt.index)
				}
				w.WriteHeader(tt.code)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			c := kvClient{http: srv.Client()}
			ok, _, out, _ := c.put(context.Background(), strings.TrimPrefix(srv.URL, "http://"), "k", "v", nil)
			if ok != tt.wantOK || out != tt.wantOut {
				t.Fatalf("got ok=%v outcome=%d, want ok=%v outcome=%d", ok, out, tt.wantOK, tt.wantOut)
			}
		})
	}
}

// A refused dial proves the write never left; a timeout after sending does not.
func TestPutTransportOutcomes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	c := kvClient{http: &http.Client{}}
	if _, _, out, err := c.put(context.Background(), closedAddr, "k", "v", nil); out != notApplied {
		t.Fatalf("closed port: got outcome %d (%v), want notApplied", out, err)
	}

	block := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer srv.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, _, out, err := c.put(ctx, strings.TrimPrefix(srv.URL, "http://"), "k", "v", nil); out != unknown {
		t.Fatalf("no answer: got outcome %d (%v), want unknown", out, err)
	}
}

func TestGetAbsentAndPresent(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/kv/missing" {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Write([]byte(`[{"Key":"k","Value":"aGk=","ModifyIndex":12}]`))
	}))
	defer srv.Close()
	c := kvClient{http: srv.Client()}
	addr := strings.TrimPrefix(srv.URL, "http://")
	if v, idx, err := c.get(context.Background(), addr, "missing"); v != "" || idx != 0 || err != nil {
		t.Fatalf("missing: got %q@%d %v, want \"\"@0", v, idx, err)
	}
	if v, idx, err := c.get(context.Background(), addr, "k"); v != "hi" || idx != 12 || err != nil {
		t.Fatalf("present: got %q@%d %v, want \"hi\"@12", v, idx, err)
	}
}
