package main

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

func TestBaseURL(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"127.0.0.1:8500", "http://127.0.0.1:8500"},
		{"http://h:1/", "http://h:1"},
		{"https://h:1", "https://h:1"},
	} {
		if got := baseURL(tc.in); got != tc.want {
			t.Errorf("baseURL(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEncodeQuery(t *testing.T) {
	q := url.Values{"recurse": {""}, "cas": {"7"}, "separator": {"/"}}
	if got, want := encodeQuery(q), "cas=7&recurse&separator=%2F"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestClientErrors checks how answers become errors: a bare 404 is a
// missing key, anything else carries the server's message.
func TestClientErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
		case "/wrong-path":
			http.Error(w, `{"error":"no such endpoint"}`, http.StatusNotFound)
		case "/busy":
			http.Error(w, `{"error":"no leader"}`, http.StatusServiceUnavailable)
		case "/moved":
			http.Redirect(w, r, "/ok", http.StatusTemporaryRedirect)
		case "/ok":
			w.Write([]byte(`true`))
		}
	}))
	defer srv.Close()
	cl := newClient(srv.URL, srv.Client())
	var ok bool
	if _, err := cl.sendJSON(context.Background(), http.MethodPut, "/moved", nil, []byte("v"), &ok); err != nil || !ok {
		t.Errorf("redirected PUT: got ok %v, err %v; want true, nil", ok, err)
	}
	_, err := cl.getJSON(context.Background(), "/missing", nil, &ok)
	if !errors.Is(err, errNotFound) {
		t.Errorf("bare 404: got %v, want errNotFound", err)
	}
	for path, want := range map[string]string{
		"/wrong-path": "server answered 404: no such endpoint",
		"/busy":       "server answered 503: no leader",
	} {
		_, err := cl.getJSON(context.Background(), path, nil, &ok)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", path, err, want)
		}
	}
}

func TestKVPath(t *testing.T) {
	for _, tc := range []struct {
		key string
		ok  bool
	}{
		{"a", true}, {"dir/", true}, {"", true}, {"a b?c#d%", true},
		{"a//b", false}, {"../x", false}, {"a/./b", false}, {"a/..", false},
	} {
		if _, err := kvPath(tc.key); (err == nil) != tc.ok {
			t.Errorf("kvPath(%q): got err %v, want ok %v", tc.key, err, tc.ok)
		}
	}
}

func TestDisplayValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain text", "plain text"},
		{"two\nlines", `"two\nlines"`},
		{"tab\there", `"tab\there"`},
		{"\xff", `"\xff"`},
	} {
		if got := displayValue([]byte(tc.in)); got != tc.want {
			t.Errorf("displayValue(%q): got %s, want %s", tc.in, got, tc.want)
		}
	}
}
