package eventstore_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
)

// A schemeless server URL with credentials ("user:pass@host:port", which
// checkURL and nats.go both complete with nats://) really connects, and
// RedactURLs must hide its password like a nats:// one.
func TestRedactURLsHidesASchemelessURLsPassword(t *testing.T) {
	srv := estest.Open(t, func(c *eventstore.Config) { c.Listen, c.Password = "127.0.0.1:-1", estest.Password })
	host := strings.TrimPrefix(srv.ClientURL(), "nats://")
	schemeless := "roomlog:" + estest.Password + "@" + host
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := eventstore.Open(ctx, eventstore.Config{URL: schemeless, ReadOnly: true, Logger: estest.Logger(t)})
	if err != nil {
		t.Fatalf("the schemeless URL with credentials does not connect: %v", err)
	}
	l.Close()
	for _, u := range []string{schemeless, "nats://roomlog:" + estest.Password + "@" + host + "," + schemeless} {
		if got := eventstore.RedactURLs(u); strings.Contains(got, estest.Password) {
			t.Errorf("RedactURLs(%q) = %q: the password is still there", u, got)
		}
	}
}

// roomd prints Open's error and exits: a URL refused by validation must not
// carry its password into that message, nor any part of it. A URL that does
// not parse at all (a base64 password holding '/' or '+', a stray '%') used
// to be quoted whole by the parser's error, and part of it even after a '/'
// ("invalid port \":Zm9v\" after host").
func TestAnInvalidURLsPasswordIsNotInOpensError(t *testing.T) {
	for pw, u := range map[string]string{
		"s3cret-in-url-7f1e": "nats://roomlog:s3cret-in-url-7f1e@:4222",
		"s3cret-in-url-7f1f": "http://roomlog:s3cret-in-url-7f1f@127.0.0.1:4222",
		"Zm9v/YmFy+c2VjcmV0": "nats://roomlog:Zm9v/YmFy+c2VjcmV0@127.0.0.1:4222",
		"s3cret%zz-in-url":   "nats://roomlog:s3cret%zz-in-url@127.0.0.1:4222",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := eventstore.Open(ctx, eventstore.Config{URL: u, Logger: estest.Logger(t)})
		cancel()
		if err == nil || strings.Contains(err.Error(), pw) || strings.Contains(err.Error(), pw[:4]) {
			t.Errorf("Open(URL with password %.2s...): %v", pw, err)
		}
	}
}
