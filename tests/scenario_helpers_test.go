package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/admin"
	"github.com/roomlog/roomlog/transport/client"
)

// person is one client of a scenario: a user's SDK client, the recorder of
// its callbacks and every callback the test has looked at so far. The
// scenarios assert what users are told, and also what they are never told
// (another group's messages, a stream of a room they are not in), which is
// why the callbacks a wait skips over are kept rather than dropped.
type person struct {
	t    *testing.T
	n    *node.Node
	user client.User
	c    *client.Client
	rec  *clienttest.Recorder
	seen []clienttest.Event
	// beats, for a person made by newBeatingPerson, is the client's clock:
	// it heartbeats when a test moves it on (see advance), never by itself.
	beats *estest.Clock
}

// newPerson dials a client for user (named after the ID, as clienttest.Login
// names users). label names the client in failures; it differs from the user
// ID when one user has several clients. A multi-room client chooses its mode
// before anything else, as ZEGO requires.
func newPerson(t *testing.T, n *node.Node, addr, user, label string, multi bool) *person {
	t.Helper()
	rec := clienttest.NewRecorder(t, label)
	p := &person{t: t, n: n, user: clienttest.User(user), rec: rec}
	p.c = clienttest.Dial(t, clienttest.URL(addr), rec, func(o *client.Options) {
		// Reconnect quickly: the tests that break connections wait for it.
		o.BackoffMin, o.BackoffMax = 10*time.Millisecond, 50*time.Millisecond
	})
	if multi {
		if err := p.c.SetRoomMode(clienttest.Ctx(t), client.MultiRoom); err != nil {
			t.Fatalf("%s: set multi-room mode: %v", label, err)
		}
	}
	return p
}

// newBeatingPerson is newPerson for a person whose client runs on a clock
// of its own (heartbeats, request timeouts, reconnection backoff), which
// only the test moves.
func newBeatingPerson(t *testing.T, n *node.Node, addr, user, label string) *person {
	t.Helper()
	rec := clienttest.NewRecorder(t, label)
	p := &person{t: t, n: n, user: clienttest.User(user), rec: rec, beats: estest.NewClock(time.Now())}
	p.c = clienttest.Dial(t, clienttest.URL(addr), rec, func(o *client.Options) { o.Clock = clienttest.ClientClock(p.beats) })
	return p
}

// beating is the client of a person made by newBeatingPerson.
func (p *person) beating() beating { return beating{p.c, p.beats} }

// token is a fresh client token for the person's user: every room, may
// publish.
func (p *person) token() string { return clienttest.Token(p.t, p.n, p.user.ID) }

// login logs into room with role (empty: anchor) and waits for Logined.
func (p *person) login(room, role string) *client.RoomSnapshot {
	p.t.Helper()
	snap, err := p.c.LoginRoom(clienttest.Ctx(p.t), room, p.user, client.LoginOptions{Token: p.token(), Role: role})
	if err != nil {
		p.t.Fatalf("%s logs into %s: %v", p.rec.Name(), room, err)
	}
	p.waitState(room, client.StateLogined)
	return snap
}

// publish publishes stream in room and checks the room it landed in.
func (p *person) publish(stream, room string) {
	p.t.Helper()
	got, err := p.c.StartPublishingStream(clienttest.Ctx(p.t), stream, client.PublishOptions{Room: room})
	if err != nil || got != room {
		p.t.Fatalf("%s publishes %s in %s: room %q, %v", p.rec.Name(), stream, room, got, err)
	}
}

// play plays stream in room and checks the room it is played in.
func (p *person) play(stream, room string) {
	p.t.Helper()
	got, err := p.c.StartPlayingStream(clienttest.Ctx(p.t), stream, room)
	if err != nil || got != room {
		p.t.Fatalf("%s plays %s in %s: room %q, %v", p.rec.Name(), stream, room, got, err)
	}
}

// broadcast sends a broadcast message to room.
func (p *person) broadcast(room, msg string) client.MessageResult {
	p.t.Helper()
	res, err := p.c.SendBroadcastMessage(clienttest.Ctx(p.t), room, msg)
	if err != nil {
		p.t.Fatalf("%s broadcasts %q in %s: %v", p.rec.Name(), msg, room, err)
	}
	return res
}

// waitFor waits for a callback that matches, keeping every callback it
// passes on the way in seen.
func (p *person) waitFor(what string, match func(clienttest.Event) bool) clienttest.Event {
	p.t.Helper()
	return p.rec.WaitFor(what, func(e clienttest.Event) bool {
		p.seen = append(p.seen, e)
		return match(e)
	})
}

func (p *person) waitState(room string, st client.RoomState) clienttest.Event {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("%s in %s", st, room), func(e clienttest.Event) bool {
		return e.Kind == "state" && e.Room == room && e.State == st
	})
}

func (p *person) waitUsers(room string, typ client.UpdateType, user string) clienttest.Event {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("user %s %s in %s", typ, user, room), func(e clienttest.Event) bool {
		return e.Kind == "user" && e.Room == room && e.Type == typ && clienttest.HasUser(e.Users, user)
	})
}

func (p *person) waitStreams(room string, typ client.UpdateType, stream string) clienttest.Event {
	p.t.Helper()
	return p.waitFor(fmt.Sprintf("stream %s %s in %s", typ, stream, room), func(e clienttest.Event) bool {
		return e.Kind == "stream" && e.Room == room && e.Type == typ && hasStream(e.Streams, stream)
	})
}

// waitBroadcast waits for the broadcast message msg in room.
func (p *person) waitBroadcast(room, msg string) client.Message {
	p.t.Helper()
	e := p.waitFor(fmt.Sprintf("broadcast %q in %s", msg, room), func(e clienttest.Event) bool {
		return e.Kind == "broadcast" && e.Room == room && len(e.Msgs) == 1 && e.Msgs[0].Message == msg
	})
	return e.Msgs[0]
}

// since returns the callbacks seen from index i on.
func (p *person) since(i int) []clienttest.Event { return slices.Clone(p.seen[i:]) }

// onlyIn checks that every callback the person saw so far concerns one of
// rooms (callbacks about no room, such as token warnings, pass).
func (p *person) onlyIn(rooms ...string) {
	p.t.Helper()
	for _, e := range p.seen {
		if e.Room != "" && !slices.Contains(rooms, e.Room) {
			p.t.Errorf("%s, in %v only, was told about %s: %v", p.rec.Name(), rooms, e.Room, e)
		}
	}
}

func hasStream(ss []client.Stream, id string) bool {
	return slices.ContainsFunc(ss, func(s client.Stream) bool { return s.Stream == id })
}

func userIDs(us []client.User) []string {
	ids := make([]string, 0, len(us))
	for _, u := range us {
		ids = append(ids, u.ID)
	}
	slices.Sort(ids)
	return ids
}

// adminCall makes an admin API request for the harness's app with a fresh
// admin token, decodes the answer into out (if not nil) and returns the
// HTTP status. path is under /admin/v1/apps/<app>.
func adminCall(t *testing.T, n *node.Node, method, path string, body, out any) int {
	t.Helper()
	tok, err := n.Signer.MintAdmin("scenario", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	var rd bytes.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd.Reset(b)
	}
	req, err := http.NewRequestWithContext(clienttest.Ctx(t), method,
		"http://"+n.HTTPAddr()+"/admin/v1/apps/"+clienttest.App+path, &rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("%s %s: undecodable answer: %v", method, path, err)
		}
	}
	return res.StatusCode
}

// roomPath is the admin path of a room.
func roomPath(room string) string { return "/rooms/" + url.PathEscape(room) }

// adminError is how the admin API answers a refusal.
type adminError struct {
	Code  domain.Code `json:"code"`
	Error string      `json:"error"`
}

// waitMembers polls the admin API's member list of room until ok accepts
// it. The admin API reads the node's projection, which folds a command's
// events a moment after the command's reply (logins excepted), so a backend
// sees a play or a kick shortly after the user does.
func waitMembers(t *testing.T, n *node.Node, room, what string, ok func([]admin.Member) bool) []admin.Member {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for {
		var got struct{ Members []admin.Member }
		code := adminCall(t, n, "GET", roomPath(room)+"/members", nil, &got)
		if code == http.StatusOK && ok(got.Members) {
			return got.Members
		}
		if time.Now().After(deadline) {
			t.Fatalf("members of %s: %s not seen within %v; last %d %+v", room, what, clienttest.Wait, code, got.Members)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// memberOf returns user's entry in members.
func memberOf(members []admin.Member, user string) (admin.Member, bool) {
	i := slices.IndexFunc(members, func(m admin.Member) bool { return m.User == user })
	if i < 0 {
		return admin.Member{}, false
	}
	return members[i], true
}

// waitRoomGone polls the admin API until room no longer exists.
func waitRoomGone(t *testing.T, n *node.Node, room string) {
	t.Helper()
	deadline := time.Now().Add(clienttest.Wait)
	for {
		var e adminError
		code := adminCall(t, n, "GET", roomPath(room), nil, &e)
		if code == http.StatusNotFound && e.Code == domain.ErrRoomNotExist.Code {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("room %s still exists %v later (last answer %d)", room, clienttest.Wait, code)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// roomEvents reads room's history from the node's log, as an auditor would.
func roomEvents(t *testing.T, n *node.Node, room string) []domain.Event {
	t.Helper()
	var out []domain.Event
	_, err := n.Log.Read(estest.Ctx(t), allFilter(n.Log), 1, func(rec eventstore.Record) error {
		events, err := domain.DecodeEvents(rec.Data)
		if err != nil {
			return err
		}
		for _, e := range events {
			if e.Aggregate == domain.KindRoom && e.AggregateID == room {
				out = append(out, e)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// findEvent returns the first event of room's history that matches, failing
// the test if there is none.
func findEvent(t *testing.T, n *node.Node, room string, match func(domain.Event) bool) domain.Event {
	t.Helper()
	events := roomEvents(t, n, room)
	for _, e := range events {
		if match(e) {
			return e
		}
	}
	t.Fatalf("no such event in %s's %d events", room, len(events))
	return domain.Event{}
}
