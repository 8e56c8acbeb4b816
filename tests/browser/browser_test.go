package browser

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/tests/clienttest"
	"github.com/roomlog/roomlog/transport/gateway"
)

//go:embed testdata/harness.js
var harness string

// browser is the one Chromium every test of this binary opens its tabs in
// (starting one takes a second or two; a tab, a few milliseconds). Nil when
// there is none, which fails the tests under CI and skips them elsewhere.
var (
	browser    context.Context
	browserErr error
)

// chromium finds the browser: $ROOMLOG_CHROMIUM, else Debian's chromium.
func chromium() (string, error) {
	if p := os.Getenv("ROOMLOG_CHROMIUM"); p != "" {
		return p, nil
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no Chromium found (apt-get install -y chromium, or set ROOMLOG_CHROMIUM)")
}

func TestMain(m *testing.M) {
	var cancel func()
	if path, err := chromium(); err != nil {
		browserErr = err
	} else {
		opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
			chromedp.DisableGPU, chromedp.Flag("use-fake-device-for-media-stream", true),
			chromedp.Flag("use-fake-ui-for-media-stream", true),
			chromedp.Flag("autoplay-policy", "no-user-gesture-required"), chromedp.WindowSize(1280, 900))
		allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
		ctx, cancelBrowser := chromedp.NewContext(allocCtx)
		// The first Run starts the browser, which lives as long as the
		// context of that Run: ctx, not one with a timeout.
		if err := chromedp.Do(ctx); err != nil {
			browserErr = fmt.Errorf("start %s: %w", path, err)
		} else {
			browser = ctx
		}
		cancel = func() { cancelBrowser(); cancelAlloc() }
	}
	code := m.Run()
	if cancel != nil {
		cancel()
	}
	os.Exit(code)
}

// needBrowser fails the test when CI is set and there is no Chromium (CI
// must run the browser tests), and skips it elsewhere.
func needBrowser(t *testing.T) {
	t.Helper()
	if browser != nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set but the browser tests cannot run: %v", browserErr)
	}
	t.Skipf("no browser: %v", browserErr)
}

// heartbeat is the heartbeat interval of the nodes started here. The SDK
// gives a connection up after 2.5 silent intervals, which a loaded machine
// never reaches with this one; a lost connection is harmless anyway (the
// SDK resumes). Tests of heartbeats and silence set their own.
const heartbeat = 2 * time.Second

// startNode starts a real node that lets pages of its own origin connect.
func startNode(t *testing.T, edit func(*clienttest.NodeOptions)) *node.Node {
	t.Helper()
	o := clienttest.NodeOptions{Gateway: gateway.Config{OriginPatterns: []string{"127.0.0.1:*"},
		HeartbeatInterval: heartbeat}}
	if edit != nil {
		edit(&o)
	}
	return clienttest.StartNode(t, o)
}

// Page is a browser tab.
type Page struct {
	t   *testing.T
	ctx context.Context
}

// openPage opens a tab on url and closes it when the test ends.
func openPage(t *testing.T, url string) *Page {
	t.Helper()
	needBrowser(t)
	ctx, cancel := chromedp.NewContext(browser)
	t.Cleanup(cancel)
	p := &Page{t: t, ctx: ctx}
	// Console errors and uncaught exceptions of the page go to the test log.
	err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *runtime.EventConsoleAPICalled:
			var parts []string
			for _, a := range e.Args {
				if len(a.Value) > 0 {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else {
					parts = append(parts, a.Description)
				}
			}
			t.Logf("console.%s: %s", e.Type, strings.Join(parts, " "))
		case *runtime.EventExceptionThrown:
			d := e.ExceptionDetails
			if d.Exception != nil {
				t.Logf("page exception: %s %s", d.Text, d.Exception.Description)
			} else {
				t.Logf("page exception: %s", d.Text)
			}
		}
	})
	if err == nil {
		err = chromedp.Do(p.timeout(30*time.Second), chromedp.Navigate(url))
	}
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return p
}

// openHarness opens a page of node n with the harness and the SDK loaded.
func openHarness(t *testing.T, n *node.Node) *Page {
	t.Helper()
	p := openPage(t, "http://"+n.HTTPAddr()+"/healthz")
	p.Eval(harness, nil)
	p.Eval(`T.load()`, nil)
	t.Cleanup(func() { p.try(`for (const e of Object.values(T.engines)) e.destroyEngine()`, nil) })
	return p
}

func (p *Page) timeout(d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(p.ctx, d)
	p.t.Cleanup(cancel)
	return ctx
}

// Eval evaluates js in the page, awaits it if it is a promise, and decodes
// its value into out (if not nil).
func (p *Page) Eval(js string, out any) {
	p.t.Helper()
	if err := p.try(js, out); err != nil {
		p.t.Fatalf("%s: %v", abbreviate(js), err)
	}
}

func (p *Page) try(js string, out any) error {
	// Longer than the waits the page runs itself (clienttest.Wait), so
	// that a wait that fails says why, with the events it saw, rather than
	// "context deadline exceeded".
	raw, err := chromedp.Run(p.timeout(clienttest.Wait+15*time.Second), chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		return err
	}
	if out != nil && len(raw) > 0 {
		return json.Unmarshal(raw, out)
	}
	return nil
}

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 160 {
		return s[:160] + "..."
	}
	return s
}

// Result is what T.run reports of an engine call.
type Result struct {
	OK      bool            `json:"ok"`
	Value   json.RawMessage `json:"value"`
	Code    int             `json:"code"`
	Name    string          `json:"name"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data"` // the server's error data
	Op      string          `json:"op"`   // the operation that failed
	IsError bool            `json:"isRoomlogError"`
}

// Run calls method on engine who with args (JSON-encoded) and returns its
// outcome.
func (p *Page) Run(who, method string, args ...any) Result {
	p.t.Helper()
	js := fmt.Sprintf("T.run(%q, %q", who, method)
	for _, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			p.t.Fatal(err)
		}
		js += ", " + string(b)
	}
	js += ")"
	var r Result
	p.Eval(js, &r)
	return r
}

// Must is Run that fails the test unless the call succeeds.
func (p *Page) Must(who, method string, args ...any) json.RawMessage {
	p.t.Helper()
	r := p.Run(who, method, args...)
	if !r.OK {
		p.t.Fatalf("%s.%s: %d %s: %s", who, method, r.Code, r.Name, r.Message)
	}
	return r.Value
}

// Event is a recorded callback.
type Event struct {
	Index int               `json:"index"`
	Who   string            `json:"who"`
	Event string            `json:"event"`
	Args  []json.RawMessage `json:"args"`
}

// Str decodes argument i as a string.
func (e Event) Str(i int) string {
	var s string
	json.Unmarshal(e.Args[i], &s)
	return s
}

// Num decodes argument i as a number.
func (e Event) Num(i int) int {
	var n int
	json.Unmarshal(e.Args[i], &n)
	return n
}

// Wait waits for the first event from index from that the JavaScript
// predicate pred (a function of the event {who, event, args}) accepts.
func (p *Page) Wait(from int, pred string) Event {
	p.t.Helper()
	var e Event
	p.Eval(fmt.Sprintf("T.waitFor(%s, %d, %d)", pred, clienttest.Wait.Milliseconds(), from), &e)
	return e
}

// WaitState waits for a roomStateChanged of who in room with reason.
func (p *Page) WaitState(from int, who, room, reason string) Event {
	p.t.Helper()
	return p.Wait(from, fmt.Sprintf(`e => e.who === %q && e.event === 'roomStateChanged' && e.args[0] === %q && e.args[1] === %q`,
		who, room, reason))
}

// Len is the number of events recorded so far.
func (p *Page) Len() int {
	p.t.Helper()
	var n int
	p.Eval(`T.events.length`, &n)
	return n
}

// Events returns the recorded events of who (of one kind, if event is not
// empty).
func (p *Page) Events(who, event string) []Event {
	p.t.Helper()
	var es []Event
	p.Eval(fmt.Sprintf(`T.of(%q, %q)`, who, event), &es)
	return es
}

// noGaps fails the test if an engine of the page reported a gap.
func (p *Page) noGaps() {
	p.t.Helper()
	if gaps := p.Events("", "roomEventGap"); len(gaps) > 0 {
		p.t.Errorf("gaps reported: %+v", gaps)
	}
}
