// Package browser holds the end-to-end tests of the browser SDK and the demo
// page: real roomd nodes, a real headless Chromium (Debian's chromium, with
// a fake camera and microphone) driven from go test with chromedp.
//
// Without Chromium the tests skip, except when CI is set: then they fail,
// so that CI never passes without having run them.
package browser
