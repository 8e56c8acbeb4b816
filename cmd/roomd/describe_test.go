package main

import (
	"strings"
	"testing"
)

// roomd logs "roomd is running ... log=<describe>" at info on every start;
// a password inside -nats-url / ROOMLOG_NATS_URL must not be in it
// (docs/operations.md: "No tool prints them").
func TestStartupLogDoesNotPrintTheURLsPassword(t *testing.T) {
	const pw = "s3cret-in-url-7f1e"
	if got := describe(options{natsURL: "nats://roomlog:" + pw + "@10.0.0.7:4222"}, nil); strings.Contains(got, pw) {
		t.Errorf("describe = %q: the NATS password is logged", got)
	}
}
