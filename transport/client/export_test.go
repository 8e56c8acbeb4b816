package client

// ResumeToken exposes the resume token of the session a client speaks for,
// so that tests can tell whether the server supports resume (and resume a
// session from a raw connection).
func ResumeToken(c *Client) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resumeToken
}

// OnMediaAnswered makes f run in c's PublishMedia and PlayMedia once their
// offer's answer came, before it is applied and the media registered: a
// test holds the call there to end its session (or close the client) under
// it. Set it before the first media call.
func OnMediaAnswered(c *Client, f func(stream, kind string)) { c.testHookAnswered = f }

// TrackedMedia returns the streams whose publishers and players c follows
// (endMedia and a resume's checks act on these).
func TrackedMedia(c *Client) (publishers, players []string) {
	c.mediaMu.Lock()
	defer c.mediaMu.Unlock()
	for s := range c.publishers {
		publishers = append(publishers, s)
	}
	for s := range c.players {
		players = append(players, s)
	}
	return publishers, players
}

// RenewingToken returns the token of the RenewToken c has in flight ("" if
// none), so that a test knows the call was made before it lets a
// reconnection through.
func RenewingToken(c *Client) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.renewing
}
