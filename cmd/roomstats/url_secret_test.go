package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// A schemeless ROOMLOG_NATS_URL with a password ("roomlog:pw@host:4222")
// is shown in -h as it is.
func TestHelpHidesASchemelessURLsPassword(t *testing.T) {
	const urlPassword = "9f3c1e77aa-in-the-url"
	t.Setenv("ROOMLOG_NATS_URL", "roomlog:"+urlPassword+"@127.0.0.1:4222")
	var out, errOut bytes.Buffer
	run(context.Background(), []string{"-h"}, &out, &errOut)
	if all := out.String() + errOut.String(); strings.Contains(all, urlPassword) {
		for _, l := range strings.Split(all, "\n") {
			if strings.Contains(l, urlPassword) {
				t.Errorf("roomstats -h prints the URL's password:\n%s", l)
			}
		}
	}
}
