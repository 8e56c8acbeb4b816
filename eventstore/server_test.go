package eventstore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestParseSyncModeRoundTrip(t *testing.T) {
	for _, m := range []SyncMode{SyncModeInterval, SyncModeAlways} {
		got, err := ParseSyncMode(m.String())
		if err != nil || got != m {
			t.Errorf("ParseSyncMode(%q) = %q, %v", m, got, err)
		}
	}
	for _, s := range []string{"", "Always", "INTERVAL", "never", " always"} {
		if _, err := ParseSyncMode(s); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("ParseSyncMode(%q) err = %v, want ErrInvalidConfig", s, err)
		}
	}
}

func TestConfigDefaults(t *testing.T) {
	c := Config{DataDir: "x"}.withDefaults()
	if c.Sync != SyncModeInterval || c.SyncInterval != 0 || c.Stream != "ROOMLOG" || c.Prefix != "roomlog" ||
		c.Replicas != 0 || c.MaxMsgSize != 1<<20 || c.ConnectTimeout != 5*time.Second || c.Logger == nil {
		t.Fatalf("defaults = %+v", c)
	}
	if err := c.validate(); err != nil {
		t.Fatalf("defaulted config invalid: %v", err)
	}
	ext := Config{URL: "nats://a:4222, b:4223", Replicas: 3}.withDefaults()
	if err := ext.validate(); err != nil {
		t.Fatalf("external config invalid: %v", err)
	}
}

func TestOpenReportsAllConfigProblems(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want []string // one fragment per expected problem
	}{
		{
			name: "embedded",
			cfg: Config{
				Sync: "sometimes", SyncInterval: -time.Second, Listen: "nope", Stream: "a.b", Prefix: "bad prefix",
				Replicas: 3, MaxMsgSize: -5, ConnectTimeout: -1,
			},
			want: []string{"DataDir", "Listen", "Password", "Replicas", "sync mode", "SyncInterval", "Stream", "Prefix", "MaxMsgSize", "ConnectTimeout"},
		},
		{
			name: "external",
			cfg:  Config{URL: "http://x, ", Sync: SyncModeAlways, SyncInterval: time.Second, Listen: ":4222", Replicas: 7, Prefix: "$JS"},
			want: []string{"scheme", "empty server URL", "Sync \"always\"", "SyncInterval applies", "contradicts", "Listen", "Replicas", "Prefix"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := Open(context.Background(), c.cfg)
			if l != nil || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Open = %v, %v; want ErrInvalidConfig", l, err)
			}
			joined, ok := err.(interface{ Unwrap() []error })
			if !ok {
				t.Fatalf("err %T is not a joined error", err)
			}
			problems := joined.Unwrap()
			if len(problems) != len(c.want) {
				t.Errorf("%d problems, want %d:\n%v", len(problems), len(c.want), err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("no problem mentions %q:\n%v", w, err)
				}
			}
		})
	}
}

func TestOpenFailsWithoutJetStream(t *testing.T) {
	// A DataDir that is a file: JetStream cannot start, and the server
	// would silently run without it.
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(context.Background(), Config{DataDir: file, Logger: testLogger(t)})
	if err == nil {
		l.Close()
		t.Fatal("Open succeeded with a file as DataDir")
	}
}

// An external NATS server without JetStream answers every JetStream request
// with "no responders", as a cluster still electing its leaders does for a
// moment. Open retries it for the start budget, then gives up saying what
// it most likely means; it used to end on the bare "no responders
// available", which did not name JetStream.
func TestOpenOnAServerWithoutJetStreamSaysSo(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("the server did not start")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // the start budget, shortened
	defer cancel()
	_, err = Open(ctx, Config{URL: srv.ClientURL(), Logger: testLogger(t)})
	if !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "is JetStream enabled on the server") {
		t.Fatalf("Open on a server without JetStream: %v, want ErrUnavailable asking whether JetStream is enabled", err)
	}
}

func TestOpenExternalUnreachable(t *testing.T) {
	start := time.Now()
	_, err := Open(context.Background(), Config{URL: "nats://127.0.0.1:1", ConnectTimeout: time.Second, Logger: testLogger(t)})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	// The refusal comes at once: the bound only catches a hang (generous:
	// a loaded machine).
	if d := time.Since(start); d > 30*time.Second {
		t.Fatalf("Open took %v", d)
	}
}

func TestReopenKeepsHistoryAndUpdatesStream(t *testing.T) {
	dir := t.TempDir()
	ctx := testCtx(t)
	l, err := Open(ctx, Config{DataDir: dir, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	subj := l.Subject("app", "room", "r1")
	seqs := appendChain(t, l, subj, 3, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}

	l = mustOpen(t, Config{DataDir: dir, MaxMsgSize: 2 << 20, Logger: testLogger(t)})
	last, ok, err := l.Last(ctx, subj)
	if err != nil || !ok || last.Seq != seqs[2] {
		t.Fatalf("Last after reopen = %d, %v, %v; want %d", last.Seq, ok, err, seqs[2])
	}
	info, err := l.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxMsgSize != 2<<20 || !info.Config.AllowDirect || info.Config.Duplicates != 2*time.Minute || info.Config.AllowAtomicPublish {
		t.Fatalf("stream config not updated: %+v", info.Config)
	}
}

func TestCloseTwiceAndAfterClose(t *testing.T) {
	l, err := Open(context.Background(), Config{DataDir: t.TempDir(), Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	subj := l.Subject("app", "room", "r1")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if l.Server().Running() {
		t.Fatal("server still running after Close")
	}
	_, err = l.Append(testCtx(t), Message{Subject: subj, MsgID: "1"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Append after Close = %v, want ErrUnavailable", err)
	}
}

func TestAppendUnavailableWhenServerDown(t *testing.T) {
	l := openEmbedded(t, nil)
	subj := l.Subject("app", "room", "r1")
	l.Server().Shutdown()
	l.Server().WaitForShutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := l.Append(ctx, Message{Subject: subj, MsgID: "1"})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	// Generous for a loaded machine, yet below the 5 s (requestTimeout) an
	// append that ignored ctx would take.
	if d := time.Since(start); d > 4500*time.Millisecond {
		t.Fatalf("Append took %v with a 300ms context", d)
	}
	_, err = l.Read(ctx, nil, 0, func(Record) error { return nil })
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Read err = %v, want ErrUnavailable", err)
	}
}

func TestNewConnAndClientURL(t *testing.T) {
	l := openEmbedded(t, nil)
	if u := l.ClientURL(); u != "" {
		t.Fatalf("in-process only log has ClientURL %q", u)
	}
	nc, err := l.NewConn("test-consumer")
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := nc.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if nc == l.nc {
		t.Fatal("NewConn returned the log's own connection")
	}

	emb, ext := openTCPPair(t, nil)
	if ext.Server() != nil || emb.Server() == nil {
		t.Fatal("Server() must be nil exactly for the external log")
	}
	if ext.ClientURL() != emb.ClientURL() || !strings.HasPrefix(emb.ClientURL(), "nats://127.0.0.1:") {
		t.Fatalf("ClientURL: embedded %q, external %q", emb.ClientURL(), ext.ClientURL())
	}
	nc2, err := ext.NewConn("tcp-consumer")
	if err != nil {
		t.Fatal(err)
	}
	defer nc2.Close()
	if err := nc2.FlushTimeout(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

func TestSecondServerOnOneDataFolderRefused(t *testing.T) {
	// Two embedded servers writing one folder corrupt the log: each keeps
	// its own view of the last sequence per subject, so neither append
	// check sees the other's writes.
	dir := t.TempDir()
	first := mustOpen(t, Config{DataDir: dir, Logger: testLogger(t)})
	ctx := testCtx(t)
	_, err := Open(ctx, Config{DataDir: dir, Logger: testLogger(t)})
	if !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open on one folder: err = %v, want ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, dir) || !strings.Contains(msg, "process "+strconv.Itoa(os.Getpid())) {
		t.Fatalf("error %q does not name the folder and the holder", msg)
	}
	// The first server is undisturbed.
	subj := first.Subject("app", "room", "r1")
	appendChain(t, first, subj, 2, 0)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	// Closed, it lets go: the folder opens again, history intact.
	again := mustOpen(t, Config{DataDir: dir, Logger: testLogger(t)})
	if last, ok, err := again.Last(ctx, subj); err != nil || !ok || last.Seq != 2 {
		t.Fatalf("Last after reopen = %d, %v, %v", last.Seq, ok, err)
	}
}

func TestNATSPortNeedsCredentialsAndCannotEraseTheLog(t *testing.T) {
	ctx := testCtx(t)
	if _, err := Open(ctx, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Logger: testLogger(t)}); !errors.Is(err, ErrInvalidConfig) ||
		!strings.Contains(err.Error(), "Password") {
		t.Fatalf("Listen without a Password: %v, want ErrInvalidConfig naming Password", err)
	}
	emb, ext := openTCPPair(t, nil)
	subj := emb.Subject("app", "room", "r1")
	appendChain(t, ext, subj, 3, 0)

	// Without credentials, or with wrong ones, nobody gets in.
	for name, opts := range map[string][]nats.Option{
		"no credentials":   nil,
		"wrong password":   {nats.UserInfo(DefaultUser, "guess-guess-guess-guess")},
		"token for a user": {nats.Token(testPassword)},
	} {
		nc, err := nats.Connect(emb.ClientURL(), append(opts, nats.MaxReconnects(0), nats.Timeout(5*time.Second))...)
		if err == nil {
			nc.Close()
			t.Errorf("%s: connected", name)
		} else if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("%s: %v, want an authorization violation", name, err)
		}
	}

	// With them, history still cannot be erased: no message delete, no
	// purge, no stream delete, and the guards cannot be turned off.
	nc, err := nats.Connect(emb.ClientURL(), nats.UserInfo(DefaultUser, testPassword), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithDefaultTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, DefaultStream)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.DeleteMsg(ctx, 2); err == nil {
		t.Error("DeleteMsg succeeded")
	}
	if err := stream.SecureDeleteMsg(ctx, 2); err == nil {
		t.Error("SecureDeleteMsg succeeded")
	}
	if err := stream.Purge(ctx); err == nil {
		t.Error("Purge succeeded")
	}
	if err := stream.Purge(ctx, jetstream.WithPurgeSubject(subj)); err == nil {
		t.Error("Purge of one subject succeeded")
	}
	// Refused by permission: the server does not answer the request.
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := js.DeleteStream(short, DefaultStream); err == nil {
		t.Error("DeleteStream succeeded")
	}
	cfg := stream.CachedInfo().Config
	cfg.DenyDelete, cfg.DenyPurge = false, false
	if _, err := js.UpdateStream(short, cfg); err == nil {
		t.Error("UpdateStream turned the guards off")
	}
	// Nor may it change the stream's settings at all: a retention of a
	// second, then back, would erase the whole log (the server lets an
	// update shorten MaxAge whatever DenyDelete says).
	cfg = stream.CachedInfo().Config
	cfg.MaxAge = time.Second
	if _, err := js.UpdateStream(short, cfg); err == nil {
		t.Error("UpdateStream set a retention of one second")
	}
	// A rollup header would erase a subject's history: refused too.
	msg := &nats.Msg{Subject: subj, Header: nats.Header{"Nats-Rollup": []string{"sub"}}, Data: []byte("x")}
	if _, err := js.PublishMsg(ctx, msg); err == nil {
		t.Error("a rollup was stored")
	}
	info, err := emb.stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 || info.State.LastSeq != 3 || !info.Config.DenyDelete || !info.Config.DenyPurge ||
		info.Config.MaxAge != 0 {
		t.Fatalf("after the attempts: %d messages, last %d, deny delete %v, deny purge %v, max age %v",
			info.State.Msgs, info.State.LastSeq, info.Config.DenyDelete, info.Config.DenyPurge, info.Config.MaxAge)
	}
}

// A node that reaches the log by URL, as the shared NATS user, may not
// change the stream even with UpdateStream: only the process that embeds the
// server may (roomd -role nats takes -retention and -update-stream). It is
// refused at once, with an error that says so, not after the start budget.
func TestAnUpdateOverTheSharedUserIsRefusedClearly(t *testing.T) {
	emb, _ := openTCPPair(t, nil)
	cfg := emb.ClientConfig()
	cfg.MaxAge, cfg.UpdateStream = time.Hour, true
	start := time.Now()
	_, err := Open(testCtx(t), cfg)
	if err == nil || !strings.Contains(err.Error(), "may not change") {
		t.Fatalf("an update by the shared user: %v, want a refusal saying it may not change the stream", err)
	}
	if took := time.Since(start); took > 15*time.Second {
		t.Errorf("the refusal took %v", took)
	}
	info, err := emb.stream.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.MaxAge != 0 {
		t.Errorf("the stream's retention is %v, want none", info.Config.MaxAge)
	}
}
