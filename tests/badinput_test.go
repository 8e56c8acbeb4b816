package tests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/roomlog/roomlog/domain"
	"github.com/roomlog/roomlog/eventstore/estest"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/tests/wire"
	"github.com/roomlog/roomlog/transport/client"
	"github.com/roomlog/roomlog/transport/gateway"
	"github.com/roomlog/roomlog/transport/protocol"
)

// Bad input over the wire (docs/protocol.md, "Limits and bad input"): each
// case gets its code from the server, the offending connection stays usable
// where the protocol says so, and the room's other members, on the SDK, are
// not disturbed. The raw client (tests/wire) sends what the SDK never would.

// nextReply reads w's frames until the next reply, whatever its id, so that
// a bad frame answered twice (or not at all) shows.
func nextReply(w *wire.Conn) protocol.Frame {
	return w.Until(func(f protocol.Frame) bool { return f.Type == protocol.TypeReply })
}

// Frames that are not a request, or not the request they claim to be, get
// malformed_request; unknown operations get unknown_operation; a frame over
// the frame limit gets frame_too_large. Each gets exactly one reply, with
// the request's id when it can be read. After each, the same connection's
// next request works, and the room's members get its broadcast as the next
// one: none of the bad frames' messages ever reaches them.
func TestBadFramesGetCodedRepliesAndDisturbNobody(t *testing.T) {
	t.Parallel()
	const maxFrame = 4 << 10
	n := clienttest.StartNode(t, clienttest.NodeOptions{Gateway: gateway.Config{MaxFrameBytes: maxFrame},
		// One marker broadcast per case: more than the room's 10 a second.
		Policy: limitsPolicy(func(p *domain.Policy) { p.Limits.BroadcastPerSecond = 1000 })})
	bob, rb := dialMember(t, n, "r1", "bob")
	_, rc := dialMember(t, n, "r1", "carol")
	m := wire.Dial(t, n.HTTPAddr())
	m.Login("r1", "mallory", clienttest.Token(t, n, "mallory"))
	rb.WaitUsers("r1", client.UpdateAdd, "mallory")

	malformed, unknown, tooLarge := protocol.ErrMalformedRequest, protocol.ErrUnknownOperation, protocol.ErrFrameTooLarge
	leak := `"data":{"room":"r1","message":"leak"}`
	for i, tc := range []struct {
		name   string
		frame  string
		binary bool
		id     string // the id the reply must carry
		want   *domain.Error
	}{
		{name: "not JSON", frame: "hello", want: malformed},
		{name: "truncated JSON", frame: `{"id":"t1","op":"broadcast",` + leak[:20], want: malformed},
		{name: "a JSON array", frame: `[{"id":"a1","op":"broadcast",` + leak + `}]`, want: malformed},
		{name: "a JSON string", frame: `"broadcast"`, want: malformed},
		{name: "JSON null", frame: `null`, want: malformed},
		{name: "two requests in one frame", frame: `{"id":"two","op":"broadcast",` + leak + `}{"id":"x","op":"broadcast",` + leak + `}`,
			id: "two", want: malformed},
		{name: "no op", frame: `{"id":"noop",` + leak + `}`, id: "noop", want: malformed},
		{name: "an empty op", frame: `{"id":"empty","op":"",` + leak + `}`, id: "empty", want: malformed},
		{name: "an op that is not a string", frame: `{"id":"opnum","op":7,` + leak + `}`, id: "opnum", want: malformed},
		{name: "an id that is not a string", frame: `{"id":7,"op":"broadcast",` + leak + `}`, want: malformed},
		{name: "an id over 64 bytes", frame: `{"id":"` + strings.Repeat("i", protocol.MaxIDBytes+1) + `","op":"broadcast",` + leak + `}`,
			want: malformed},
		{name: "no data", frame: `{"id":"nodata","op":"broadcast"}`, id: "nodata", want: malformed},
		{name: "data that is not an object", frame: `{"id":"datastr","op":"broadcast","data":"leak"}`, id: "datastr", want: malformed},
		{name: "a message that is not a string", frame: `{"id":"msgnum","op":"broadcast","data":{"room":"r1","message":42}}`,
			id: "msgnum", want: malformed},
		{name: "a user that is not an object", frame: `{"id":"user","op":"login","data":{"room":"r2","user":"mallory"}}`,
			id: "user", want: malformed},
		{name: "recipients that are not a list", frame: `{"id":"to","op":"custom_command","data":{"room":"r1","to":"bob","command":"leak"}}`,
			id: "to", want: malformed},
		{name: "a binary frame", frame: `{"id":"bin","op":"broadcast",` + leak + `}`, binary: true, want: malformed},
		{name: "an unknown op", frame: `{"id":"tele","op":"teleport","data":{}}`, id: "tele", want: unknown},
		{name: "an op in the wrong case", frame: `{"id":"caps","op":"BROADCAST",` + leak + `}`, id: "caps", want: unknown},
		{name: "resume after the first request", frame: `{"id":"late","op":"resume","data":{"resume_token":"x"}}`,
			id: "late", want: protocol.ErrResumeFailed},
		{name: "a request over the frame limit",
			frame: `{"id":"big","op":"broadcast","data":{"room":"r1","message":"` + strings.Repeat("x", maxFrame) + `"}}`,
			id:    "big", want: tooLarge},
		{name: "junk over the frame limit", frame: strings.Repeat("\x01", maxFrame+1), want: tooLarge},
	} {
		if tc.binary {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			if err := m.WS.Write(ctx, websocket.MessageBinary, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			cancel()
		} else {
			m.SendRaw(tc.frame)
		}
		wireRefusedWith(t, tc.name, nextReply(m), tc.id, tc.want)

		marker := "after " + tc.name
		id := fmt.Sprint("ok-", i)
		m.Send(id, protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: marker})
		if f := nextReply(m); f.ID != id || f.Code != 0 {
			t.Fatalf("%s: the next request's reply is %+v", tc.name, f)
		}
		for _, r := range []*clienttest.Recorder{rb, rc} {
			if got := nextText(t, r, "broadcast", "r1"); got != marker {
				t.Fatalf("%s: %s's next broadcast is %q, want %q", tc.name, r.Name(), got, marker)
			}
		}
	}

	// The SDK members' own requests were never affected.
	if _, err := bob.SendBroadcastMessage(clienttest.Ctx(t), "r1", "bob, unbothered"); err != nil {
		t.Fatal(err)
	}
	if got := nextText(t, rc, "broadcast", "r1"); got != "bob, unbothered" {
		t.Errorf("carol's next broadcast: %q", got)
	}
	m.Until(func(f protocol.Frame) bool {
		return f.Event == protocol.EvBroadcastMessage && strings.Contains(string(f.Data), "bob, unbothered")
	})
}

// With the default limits: a frame over 64 KiB gets frame_too_large and the
// connection goes on; a frame over 1 MiB closes the connection with status
// 1009 (message too big) and a reason. The session itself survives the
// close (it may resume), so the other members see no departure, and what
// the oversize frames carried never reaches them.
func TestOversizeFrames(t *testing.T) {
	t.Parallel()
	n := clienttest.StartNode(t, clienttest.NodeOptions{})
	bob, rb := dialMember(t, n, "r1", "bob")
	_, rc := dialMember(t, n, "r1", "carol")
	m := wire.Dial(t, n.HTTPAddr())
	m.Login("r1", "mallory", clienttest.Token(t, n, "mallory"))
	rb.WaitUsers("r1", client.UpdateAdd, "mallory")
	frame := func(id string, size int) string {
		head := `{"id":"` + id + `","op":"broadcast","data":{"room":"r1","message":"`
		return head + strings.Repeat("x", size-len(head)-3) + `"}}`
	}

	m.SendRaw(frame("big", 64<<10+1))
	wireRefusedWith(t, "a frame of 64 KiB + 1", nextReply(m), "big", protocol.ErrFrameTooLarge)
	m.Send("ok", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "still talking"})
	if f := nextReply(m); f.ID != "ok" || f.Code != 0 {
		t.Fatalf("the request after frame_too_large: %+v", f)
	}
	for _, r := range []*clienttest.Recorder{rb, rc} {
		if got := nextText(t, r, "broadcast", "r1"); got != "still talking" {
			t.Fatalf("%s's next broadcast: %q", r.Name(), got)
		}
	}

	m.SendRaw(frame("huge", 1<<20+1))
	var err error
	for err == nil {
		_, err = m.TryNext(10 * time.Second)
	}
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusMessageTooBig || ce.Reason == "" {
		t.Fatalf("after a frame of 1 MiB + 1 the connection ended with %v, want status 1009 and a reason", err)
	}

	// The room goes on: bob is heard, the oversize frame never was, and
	// mallory is still a member (her session may resume).
	if _, err := bob.SendBroadcastMessage(clienttest.Ctx(t), "r1", "after the close"); err != nil {
		t.Fatal(err)
	}
	if got := nextText(t, rc, "broadcast", "r1"); got != "after the close" {
		t.Errorf("carol's next broadcast: %q", got)
	}
	if got := roomUsers(t, bob, "r1"); !slices.Equal(got, []string{"bob", "carol", "mallory"}) {
		t.Errorf("r1's users after mallory's connection closed: %v", got)
	}
	back := wire.Dial(t, n.HTTPAddr())
	back.Send("resume", protocol.OpResume, protocol.ResumeRequest{ResumeToken: m.Hello.ResumeToken,
		Rooms: map[string]uint64{"r1": 0}})
	f := back.Reply("resume")
	var rr protocol.ResumeReply
	if f.Code != 0 || json.Unmarshal(f.Data, &rr) != nil || rr.Rooms["r1"].Status != "resumed" {
		t.Errorf("mallory resumes after the close: %+v", f)
	}
}

// A connection may send RequestsPerSecond requests with a burst of
// RequestBurst (2 and 4 here), counted on the node's clock (a fake one,
// frozen during the flood): past that, too_many_requests, while heartbeats
// are still answered at once. The requests that passed are carried out in
// order and the refused ones never are; once the rate allows it the
// connection works again; other connections are not limited by it.
func TestRequestRateLimitPerConnection(t *testing.T) {
	t.Parallel()
	const rps, burst, flood = 2, 4, 12
	clock := estest.NewClock(time.Now())
	n := clienttest.StartNode(t, clienttest.NodeOptions{Clock: clock,
		Gateway: gateway.Config{RequestsPerSecond: rps, RequestBurst: burst}})
	bob, rb := dialMember(t, n, "r1", "bob")
	_, rc := dialMember(t, n, "r1", "carol")
	m := wire.Dial(t, n.HTTPAddr())
	m.Login("r1", "mallory", clienttest.Token(t, n, "mallory")) // one of the burst
	rb.WaitUsers("r1", client.UpdateAdd, "mallory")

	for i := range flood {
		m.Send(fmt.Sprint(i), protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: fmt.Sprint("flood ", i)})
	}
	var passed []int
	for range flood {
		f := nextReply(m)
		var i int
		if _, err := fmt.Sscan(f.ID, &i); err != nil {
			t.Fatalf("a reply to no request of the flood: %+v", f)
		}
		switch f.Code {
		case 0:
			passed = append(passed, i)
		default:
			wireRefusedWith(t, "a request over the rate", f, f.ID, protocol.ErrTooManyRequests)
		}
	}
	// The login took one of the burst; the clock stood still.
	slices.Sort(passed)
	if fmt.Sprint(passed) != "[0 1 2]" {
		t.Fatalf("requests %v of %d passed, want the first %d", passed, flood, burst-1)
	}

	// Heartbeats are never limited.
	m.Send("hb", protocol.OpHeartbeat, nil)
	if f := nextReply(m); f.ID != "hb" || f.Code != 0 {
		t.Fatalf("a heartbeat while limited: %+v", f)
	}
	// Bob's connection has its own budget.
	if _, err := bob.SendBroadcastMessage(clienttest.Ctx(t), "r1", "bob, not limited"); err != nil {
		t.Fatalf("bob's broadcast while mallory is limited: %v", err)
	}
	// Mallory's connection works again once the rate allows: not before
	// half a second, then at once.
	m.Send("early", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "too early"})
	wireRefusedWith(t, "a request still over the rate", nextReply(m), "early", protocol.ErrTooManyRequests)
	clock.Advance(time.Second / rps)
	m.Send("again", protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: "mallory again"})
	if f := nextReply(m); f.ID != "again" || f.Code != 0 {
		t.Fatalf("a request once the rate allows it: %+v", f)
	}

	// Bob got exactly the flood's requests that passed, in order, then the
	// request after it; carol the same with bob's in between.
	var want []string
	for _, i := range passed {
		want = append(want, fmt.Sprint("flood ", i))
	}
	for _, who := range []struct {
		r    *clienttest.Recorder
		tail []string
	}{{rb, []string{"mallory again"}}, {rc, []string{"bob, not limited", "mallory again"}}} {
		for _, w := range append(slices.Clone(want), who.tail...) {
			if got := nextText(t, who.r, "broadcast", "r1"); got != w {
				t.Fatalf("%s's next broadcast: %q, want %q (passed: %v)", who.r.Name(), got, w, passed)
			}
		}
	}
}

// A connection may have RequestQueue requests waiting for its session (one
// here): requests sent faster than they are carried out are refused with
// too_many_requests beyond that, and the others are carried out in order.
func TestRequestQueueLimitPerConnection(t *testing.T) {
	t.Parallel()
	const flood = 100
	n := clienttest.StartNode(t, clienttest.NodeOptions{Gateway: gateway.Config{RequestQueue: 1,
		RequestsPerSecond: 1e6, RequestBurst: 1e6}, Policy: limitsPolicy(func(p *domain.Policy) {
		p.Limits.BroadcastPerSecond = 1 << 20
	})})
	_, rb := dialMember(t, n, "r1", "bob")
	m := wire.Dial(t, n.HTTPAddr())
	m.Login("r1", "mallory", clienttest.Token(t, n, "mallory"))

	// Sent without waiting: each request reaches the server long before the
	// one ahead of it has been appended to the log.
	for i := range flood {
		m.Send(fmt.Sprint(i), protocol.OpBroadcast, protocol.MessageRequest{Room: "r1", Message: fmt.Sprint("flood ", i)})
	}
	var passed []int
	refused := 0
	for range flood {
		f := nextReply(m)
		var i int
		if _, err := fmt.Sscan(f.ID, &i); err != nil {
			t.Fatalf("a reply to no request of the flood: %+v", f)
		}
		if f.Code == 0 {
			passed = append(passed, i)
			continue
		}
		wireRefusedWith(t, "a request past the queue", f, f.ID, protocol.ErrTooManyRequests)
		refused++
	}
	if refused == 0 {
		t.Fatalf("all %d pipelined requests were queued with a queue of one", flood)
	}
	slices.Sort(passed)
	for _, i := range passed {
		if got, want := nextText(t, rb, "broadcast", "r1"), fmt.Sprint("flood ", i); got != want {
			t.Fatalf("bob's next broadcast: %q, want %q", got, want)
		}
	}
	t.Logf("%d of %d pipelined requests passed a queue of one", len(passed), flood)
}

// Clients that stop reading in a busy room (SEMANTICS.md section 3;
// docs/protocol.md: barrage is "dropped first when the client falls behind",
// a full queue is a slow consumer). Stan and Sid stop reading while Bob
// floods the room with barrage, more than the network and half a queue can
// hold, and then with a few broadcasts:
//
//  1. Stan reads again: barrage was dropped, and nothing else: he has every
//     broadcast, with no gap, and his connection is still open;
//  2. more broadcasts fill Sid's queue: he is cut off, and what he reads is
//     an unbroken run of room events, then session_closing slow_consumer,
//     then a close with status 1008 and that reason;
//  3. Sid resumes and gets the broadcasts he missed from the log, in order.
//
// Carol, reading as a healthy client does, gets every broadcast in order
// with no gap throughout, and Bob's requests all succeed.
//
// What a stalled client does not read waits in socket buffers before it
// reaches the server's queue; the storm is larger than those can hold
// (socketSlack), so it is certain to reach the queues.
func TestStalledReadersInABusyRoom(t *testing.T) {
	t.Parallel()
	const queue, bodySize = 32, 60_000
	n := clienttest.StartNode(t, clienttest.NodeOptions{
		Policy: limitsPolicy(func(p *domain.Policy) {
			p.Limits.MessageBytes = bodySize
			p.Limits.BroadcastPerSecond = 1 << 20
			p.Limits.BarragePerSecond = 1 << 20
		}),
		Gateway: gateway.Config{QueueSize: queue, RequestsPerSecond: 1e6, RequestBurst: 1e6,
			// A write blocked on a stalled socket gives up after this; the
			// test reads again well before, which is how the client gets
			// to hear why it is cut off.
			// Generous: two -race suites side by side once took longer
			// than 8 s to read again.
			WriteTimeout: time.Minute},
	})
	ctx := clienttest.Ctx(t)
	bob, _ := dialMember(t, n, "busy", "bob")
	_, rc := dialMember(t, n, "busy", "carol")
	stalled := map[string]*stallConn{}
	last := map[string]uint64{} // the seq of the last room event each got
	slack := 0
	for _, name := range []string{"stan", "sid"} {
		c := dialStalling(t, n.HTTPAddr(), 16<<10)
		c.send("login", protocol.OpLogin, protocol.LoginRequest{Room: "busy", User: clienttest.User(name),
			Token: clienttest.Token(t, n, name)})
		f := c.reply("login") // no event of the room comes before it
		var snap protocol.RoomSnapshot
		if f.Code != 0 || json.Unmarshal(f.Data, &snap) != nil {
			t.Fatalf("%s's login: %+v", name, f)
		}
		stalled[name], last[name] = c, snap.Seq
		rc.WaitUsers("busy", client.UpdateAdd, name)
		slack = max(slack, socketSlack(t, c.rcvbuf))
	}
	stan, sid := stalled["stan"], stalled["sid"]
	body := func(tag string) string { return tag + strings.Repeat(".", bodySize-len(tag)) }

	// read reads who's frames until stop, checking that the room's events
	// follow on from the last one (no gap), and returns the broadcasts' tags
	// and the number of barrage messages.
	read := func(who string, stop func(protocol.Frame) bool) (tags []string, barrages int, end protocol.Frame, err error) {
		t.Helper()
		for {
			f, err := stalled[who].next(10 * time.Second)
			if err != nil {
				return tags, barrages, f, err
			}
			if f.Seq != 0 {
				if f.Prev != last[who] {
					t.Fatalf("%s's %s #%d follows #%d, but the last he got was #%d", who, f.Event, f.Seq, f.Prev, last[who])
				}
				last[who] = f.Seq
			}
			switch f.Event {
			case protocol.EvBroadcastMessage:
				var msg protocol.Message
				json.Unmarshal(f.Data, &msg)
				tags = append(tags, msg.Message)
			case protocol.EvBarrageMessage:
				barrages++
			}
			if stop(f) {
				return tags, barrages, f, nil
			}
		}
	}
	isBroadcast := func(tag string) func(protocol.Frame) bool {
		return func(f protocol.Frame) bool {
			return f.Event == protocol.EvBroadcastMessage && strings.Contains(string(f.Data), `"`+tag+`"`)
		}
	}
	var sent []string // every broadcast, in order
	broadcast := func(tag string) {
		t.Helper()
		if _, err := bob.SendBroadcastMessage(ctx, "busy", tag); err != nil {
			t.Fatalf("broadcast %q: %v", tag, err)
		}
		sent = append(sent, tag)
	}
	carolGets := func(tags []string) {
		t.Helper()
		for _, tag := range tags {
			if got := nextText(t, rc, "broadcast", "busy"); got != tag {
				t.Fatalf("carol's next broadcast: %q, want %q", got, tag)
			}
		}
	}

	// The storm, then broadcasts that fit in the rest of a half-full queue.
	storm := slack/bodySize + queue/2 + 4
	for i := range storm {
		if _, err := bob.SendBarrageMessage(ctx, "busy", body(fmt.Sprint("barrage ", i))); err != nil {
			t.Fatalf("barrage %d: %v", i, err)
		}
	}
	for i := range queue/2 - 4 {
		broadcast(fmt.Sprint("after the storm ", i))
	}
	carolGets(sent)

	// 1. Stan reads again.
	tags, barrages, _, err := read("stan", isBroadcast(sent[len(sent)-1]))
	if err != nil {
		t.Fatalf("stan reads again after the storm: %v", err)
	}
	if !slices.Equal(tags, sent) {
		t.Fatalf("stan's broadcasts after the storm: %q, want %q", tags, sent)
	}
	if barrages == 0 || barrages >= storm {
		t.Fatalf("stan got %d of %d barrage messages, want some dropped and some not", barrages, storm)
	}
	t.Logf("stan got %d of %d barrage messages and every broadcast", barrages, storm)
	stan.send("back", protocol.OpBroadcast, protocol.MessageRequest{Room: "busy", Message: "stan is back"})
	if _, _, f, err := read("stan", func(f protocol.Frame) bool { return f.ID == "back" }); err != nil || f.Code != 0 {
		t.Fatalf("stan's broadcast after the storm: %+v, %v", f, err)
	}
	sent = append(sent, "stan is back")
	carolGets(sent[len(sent)-1:])

	// 2. A queue's worth of broadcasts more: Sid's queue, half full of
	// barrage, overflows.
	from := len(sent)
	for i := range queue {
		broadcast(fmt.Sprint("flood ", i))
	}
	carolGets(sent[from:])
	tags, _, end, err := read("sid", func(f protocol.Frame) bool { return f.Event == protocol.EvSessionClosing })
	if err != nil {
		t.Fatalf("sid read %q and then %v, before any session_closing", tags, err)
	}
	var closing protocol.SessionClosing
	json.Unmarshal(end.Data, &closing)
	if closing.Code != int(protocol.ErrSlowConsumer.Code) || closing.Error != protocol.ErrSlowConsumer.Name {
		t.Fatalf("sid's session_closing: %+v", closing)
	}
	if len(tags) >= len(sent) || !slices.Equal(tags, sent[:len(tags)]) {
		t.Fatalf("sid's broadcasts before the cut: %q, want a proper start of %q", tags, sent)
	}
	_, err = sid.next(10 * time.Second)
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != protocol.ErrSlowConsumer.Name {
		t.Fatalf("after session_closing sid's connection ended with %v, want status 1008 %q", err, protocol.ErrSlowConsumer.Name)
	}
	t.Logf("sid was cut off after %d of %d broadcasts", len(tags), len(sent))
	// Stan, reading again, is not: he gets the flood.
	if tags, _, _, err := read("stan", isBroadcast(sent[len(sent)-1])); err != nil || !slices.Equal(tags, sent[from:]) {
		t.Fatalf("stan's broadcasts of the flood: %q, %v", tags, err)
	}

	// 3. Sid resumes from the last event he got and catches up from the log.
	back := wire.Dial(t, n.HTTPAddr())
	back.Send("resume", protocol.OpResume, protocol.ResumeRequest{ResumeToken: sid.hello.ResumeToken,
		Rooms: map[string]uint64{"busy": last["sid"]}})
	f := back.Reply("resume")
	var rr protocol.ResumeReply
	if f.Code != 0 || json.Unmarshal(f.Data, &rr) != nil || rr.Rooms["busy"].Status != "resumed" {
		t.Fatalf("sid's resume: %+v", f)
	}
	for _, tag := range sent[len(tags):] {
		f := back.Until(func(f protocol.Frame) bool { return f.Seq != 0 })
		if f.Prev != last["sid"] || !isBroadcast(tag)(f) {
			t.Fatalf("sid's replay: %s #%d after #%d (%.80s), want %q after #%d", f.Event, f.Seq, f.Prev, f.Data, tag, last["sid"])
		}
		last["sid"] = f.Seq
	}
	broadcast("welcome back")
	if f := back.Until(func(f protocol.Frame) bool { return f.Seq != 0 }); f.Prev != last["sid"] || !isBroadcast("welcome back")(f) {
		t.Fatalf("sid's first live event after the replay: %+v", f)
	}
	carolGets(sent[len(sent)-1:])
}
