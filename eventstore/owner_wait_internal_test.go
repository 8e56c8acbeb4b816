package eventstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The owner's name is the embedded server's own: a shared user of that name
// was accepted and then could never log in (the owner's random password
// won). It is refused as a configuration error.
func TestASharedUserNamedLikeTheOwnerIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := Open(ctx, Config{DataDir: t.TempDir(), Listen: "127.0.0.1:-1", Password: testPassword, User: ownerUser,
		Logger: testLogger(t)})
	if err == nil {
		l.Close()
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("User %q: %v, want ErrInvalidConfig", ownerUser, err)
	}
}

// Wait's contract: ctx's error wrapped in ErrUnavailable if ctx ends first,
// cancelled as well as out of time: the append may still land. A cancelled
// context came back bare, which a caller trusting the contract would have
// taken for a final refusal.
func TestWaitWrapsACancelledContextInErrUnavailable(t *testing.T) {
	l := openEmbedded(t, nil)
	p, err := l.AppendAsync(Message{Subject: l.Subject("a", "room", "r"), MsgID: "m", Data: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := p.Wait(ctx); err != nil && (!errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled)) {
		t.Errorf("Wait with a cancelled context: %v, want it wrapped in ErrUnavailable", err)
	}
}
