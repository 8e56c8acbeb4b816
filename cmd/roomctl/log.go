package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/roomlog/roomlog/eventstore"
)

// logFlags are the flags of every command that reads the log.
type logFlags struct {
	nats, password, data string
	fs                   *flag.FlagSet
}

func (f *logFlags) register(fs *flag.FlagSet) {
	f.fs = fs
	def := os.Getenv("ROOMLOG_NATS_URL")
	if def == "" {
		def = "nats://127.0.0.1:4222"
	}
	fs.StringVar(&f.nats, "nats", def, "NATS URL of a running roomd (ROOMLOG_NATS_URL)")
	// The usage shows a URL's password as "xxxxx".
	fs.Lookup("nats").DefValue = eventstore.RedactURLs(def)
	// The password's default is read after parsing, so that -h never
	// prints it; -nats-password "" still means none.
	fs.StringVar(&f.password, "nats-password", "",
		`password of NATS user "roomlog" (a development roomd keeps it in <data>/nats-password) (default $`+eventstore.PasswordEnv+`)`)
	fs.StringVar(&f.data, "data", "", "data folder of a stopped roomd: open it directly instead of -nats")
}

func (f *logFlags) open(ctx context.Context) (*eventstore.Log, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// Read-only: a tool binds to the stream as it is and never creates or
	// changes it (a default Config would have asked for one replica).
	password := f.password
	if !isSet(f.fs, "nats-password") {
		password = os.Getenv(eventstore.PasswordEnv)
	}
	cfg := eventstore.Config{URL: f.nats, Password: password, ReadOnly: true, Logger: quiet()}
	if f.data != "" {
		if _, err := os.Stat(f.data); err != nil {
			return nil, fmt.Errorf("-data: %w", err)
		}
		// Nothing is written into a folder that holds no log (a typo, the
		// parent folder): roomd keeps its log in <data>/jetstream.
		if _, err := os.Stat(filepath.Join(f.data, "jetstream")); err != nil {
			return nil, fmt.Errorf("-data %s holds no roomlog data (no jetstream folder): give the folder roomd -data wrote", f.data)
		}
		cfg = eventstore.Config{DataDir: f.data, ReadOnly: true, Logger: quiet()}
	}
	log, err := eventstore.Open(ctx, cfg)
	if errors.Is(err, nats.ErrAuthorization) {
		return nil, fmt.Errorf("%w: give the node's NATS password with -nats-password or ROOMLOG_NATS_PASSWORD "+
			"(a development roomd keeps it in <data>/nats-password)", err)
	}
	return log, err
}

// isSet reports whether flag name was given on the command line.
func isSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}
