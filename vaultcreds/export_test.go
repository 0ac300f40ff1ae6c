package vaultcreds

// TokenForTest returns the token the client keeps, so tests can check that
// it is renewed, reused and revoked, and that it never reaches a log.
func (c *Client) TokenForTest() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sess == nil {
		return ""
	}
	return c.sess.api.Token()
}

// Transient exposes the retry classification to table tests.
var Transient = transient
