package client

// ResumeToken exposes the resume token of the session a client speaks for,
// so that tests can tell whether the server supports resume (and resume a
// session from a raw connection).
func ResumeToken(c *Client) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.resumeToken
}
