package browser

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/roomlog/roomlog/cmd/roomd/node"
	"github.com/roomlog/roomlog/tests/clienttest"
)

// Until polls the JavaScript expression expr in the page until it is truthy
// and returns its value decoded into out (if not nil).
func (p *Page) Until(expr string, out any) {
	p.t.Helper()
	js := fmt.Sprintf(`new Promise((resolve, reject) => {
		const deadline = Date.now() + %d;
		const poll = () => {
			let v;
			try { v = (%s); } catch (e) { v = undefined; }
			if (v) return resolve(v);
			if (Date.now() > deadline) return reject(new Error('still false: ' + %q));
			setTimeout(poll, 20);
		};
		poll();
	})`, clienttest.Wait.Milliseconds(), expr, abbreviate(expr))
	p.Eval(js, out)
}

// submit fills the inputs of the form at selector and submits it, as a user
// would.
func (p *Page) submit(selector string, values ...string) {
	p.t.Helper()
	p.Eval(fmt.Sprintf(`(() => {
		const f = document.querySelector(%q);
		const inputs = f.querySelectorAll('input');
		const values = %s;
		values.forEach((v, i) => { inputs[i].value = v; });
		f.requestSubmit();
		return true;
	})()`, selector, jsonOf(values)), nil)
}

func jsonOf(v []string) string {
	quoted := make([]string, len(v))
	for i, s := range v {
		quoted[i] = fmt.Sprintf("%q", s)
	}
	return "[" + strings.Join(quoted, ",") + "]"
}

// The demo page: two users in rooms, each page shows the other's presence,
// stream, chat and extra info live; switching rooms moves the card.
func TestDemoPage(t *testing.T) {
	// Development mode, as roomd without -secret: the page gets its tokens.
	n := startNode(t, func(o *clienttest.NodeOptions) {
		o.Edit = func(c *node.Config) { c.Web.DevTokens = true }
	})
	base := "http://" + n.HTTPAddr() + "/"
	a := openPage(t, base+"?user=alice&rooms=r1&publish=r1")
	a.Until(`window.demo && window.demo.ready`, nil)
	b := openPage(t, base+"?user=bob&rooms=r1,r2&publish=r1")
	b.Until(`window.demo && window.demo.ready`, nil)
	t.Cleanup(func() {
		for _, p := range []*Page{a, b} {
			p.try(`window.demo.engine.destroyEngine()`, nil)
		}
	})

	card := func(room string) string {
		return fmt.Sprintf(`document.querySelector('article.room[data-room=%q]')`, room)
	}
	b.Until(card("r1")+`.querySelector('.state').textContent === 'LOGINED'`, nil)
	b.Until(card("r2")+`.querySelector('.state').textContent === 'LOGINED'`, nil)
	b.Until(card("r1")+`.querySelector('.members').textContent.includes('alice')`, nil)
	a.Until(card("r1")+`.querySelector('.members').textContent.includes('bob')`, nil)
	b.Until(card("r1")+`.querySelector('.online').textContent === '2 online'`, nil)
	var leak bool
	b.Eval(card("r2")+`.querySelector('.members').textContent.includes('alice')`, &leak)
	if leak {
		t.Error("alice, who is only in r1, is listed in bob's r2")
	}

	// Both publish their (fake) cameras in r1 and play each other's: each
	// page shows its own preview and the other's video, playing.
	playing := func(stream string) string {
		return fmt.Sprintf(`(() => { const v = document.querySelector('figure[data-stream=%q] video');
			return v && v.videoWidth > 0 && v.currentTime > 0.5 && !v.paused; })()`, stream)
	}
	local := `(() => { const v = document.querySelector('#local video'); return v.videoWidth > 0 && v.currentTime > 0.5; })()`
	b.Until(card("r1")+`.querySelector('.streams [data-stream="alice-r1"]')`, nil)
	b.Until(playing("alice-r1"), nil)
	b.Until(local, nil)
	a.Until(playing("bob-r1"), nil)
	screenshot(t, b, "demo-both-videos.png")

	// Chat and extra info, typed into the forms.
	a.submit(`article.room[data-room="r1"] .send`, "hello from alice")
	b.Until(card("r1")+`.querySelector('.chat').textContent.includes('hello from alice')`, nil)
	b.submit(`article.room[data-room="r1"] .set-extra`, "topic", "fractions")
	a.Until(card("r1")+`.querySelector('.extra').textContent.includes('fractions')`, nil)

	// Bob switches r2 for r3.
	b.submit(`article.room[data-room="r2"] .switch`, "r3")
	b.Until(card("r3")+` && `+card("r3")+`.querySelector('.state').textContent === 'LOGINED' && !`+card("r2"), nil)

	// Alice leaves r1: bob's page drops her, her stream and its video.
	a.Eval(card("r1")+`.querySelector('.leave').click()`, nil)
	b.Until(`!`+card("r1")+`.querySelector('.members').textContent.includes('alice')`, nil)
	b.Until(`!`+card("r1")+`.querySelector('.streams [data-stream="alice-r1"]')`, nil)
	b.Until(`!document.querySelector('figure[data-stream="alice-r1"]')`, nil)
	a.Until(`!`+card("r1"), nil)
}

// screenshot writes a PNG of the page to the test's artifact directory
// (go test -artifacts keeps it).
func screenshot(t *testing.T, p *Page, name string) {
	t.Helper()
	png, err := chromedp.Run(p.timeout(30*time.Second), chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	path := filepath.Join(t.ArtifactDir(), name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s (%d bytes)", path, len(png))
}
